from txnmon.api.limits import IdempotentAnswers, RecentIds, TokenBuckets, retry_after_header


def test_a_bucket_allows_its_burst_then_says_how_long_to_wait_and_refills():
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = buckets.take("k", 0.0)
    assert wait == 0.5
    assert retry_after_header(wait) == "1"
    assert buckets.take("other", 0.0) == 0.0  # per key
    assert buckets.take("k", 0.5) == 0.0


def test_recent_ids_are_duplicates_within_the_window_only_and_a_release_forgets():
    recent = RecentIds(window=10.0, max_ids=100)
    assert recent.claim("t1", 0.0) is True
    recent.confirm("t1")
    assert recent.claim("t1", 5.0) is False
    assert recent.claim("t1", 11.0) is True
    recent.release("t1")
    assert recent.claim("t1", 11.5) is True


def test_a_copy_that_arrives_while_the_first_is_still_being_sent_is_not_called_a_duplicate():
    # the first send may still fail (Kafka slow, the client timed out and retried): answering the
    # retry "duplicate" would lose the record if it does
    recent = RecentIds(window=10.0, max_ids=100)
    assert recent.claim("t1", 0.0) is True
    assert recent.claim("t1", 1.0) is None  # in flight: neither sent again nor a duplicate
    recent.release("t1")  # the first send failed
    assert recent.claim("t1", 2.0) is True  # the retry is sent
    recent.confirm("t1")
    assert recent.claim("t1", 3.0) is False  # now it is a duplicate


def test_recent_ids_stay_within_their_memory_bound():
    recent = RecentIds(window=1e9, max_ids=2)
    for i in range(5):
        assert recent.claim(f"t{i}", float(i))
    assert len(recent._seen) <= 2
    assert recent.claim("t0", 6.0)  # forgotten, oldest first


def test_the_first_answer_per_idempotency_key_is_kept_for_the_window():
    answers = IdempotentAnswers(window=60.0)
    answers.put(("key", "abc"), 202, {"accepted": ["t1"]}, 0.0)
    assert answers.get(("key", "abc"), 30.0) == (202, {"accepted": ["t1"]})
    assert answers.get(("other", "abc"), 30.0) is None
    assert answers.get(("key", "abc"), 61.0) is None


def test_expired_idempotent_answers_are_let_go_as_new_ones_come():
    answers = IdempotentAnswers(window=10.0)
    answers.put(("shop", "k1"), 202, {"accepted": ["t1"]}, 0.0)
    answers.put(("shop", "k2"), 202, {"accepted": ["t2"]}, 20.0)  # k1 expired meanwhile: no longer held
    assert list(answers._answers) == [("shop", "k2")]
    assert answers.get(("shop", "k2"), 21.0) == (202, {"accepted": ["t2"]})
