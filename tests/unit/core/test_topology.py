from txnmon.core.topology import partition_problems

TOPICS = {"raw": 6, "by_user": 6, "state": 6, "enriched": 6, "dlq": 6}


def judge(counts, wanted=6):
    return partition_problems(counts, by_user="by_user", state="state", wanted=wanted)


def test_an_even_layout_has_no_problem():
    assert judge(TOPICS) == ([], [])


def test_a_state_changelog_partitioned_unlike_the_by_user_topic_is_an_error():
    errors, _ = judge({**TOPICS, "state": 3})
    assert len(errors) == 1 and "by_user has 6 partitions and state 3" in errors[0]


def test_the_raw_topic_may_differ_but_is_reported_against_topic_partitions():
    errors, warnings = judge({**TOPICS, "raw": 12})
    assert errors == [] and warnings == ["raw has 12 partitions, TOPIC_PARTITIONS is 6: an existing topic keeps "
                                         "its count, so at most 12 processors get work on it (docs/scaling.md)"]


def test_topic_partitions_raised_over_existing_topics_warns_for_each():
    errors, warnings = judge(TOPICS, wanted=12)
    assert errors == [] and len(warnings) == 5 and all("at most 6 processors" in w for w in warnings)


def test_a_missing_topic_is_not_judged():
    assert judge({"by_user": 6}) == ([], [])
