"""More processes, same result: two `txnmon stream` processes in one group on six partitions store
exactly what one process stores from the same input (bench/scale_out.py's runs, on small input).
And `txnmon init` says when the topics' partitions do not fit: a state changelog partitioned
unlike the by-user topic (an error), topics with fewer partitions than TOPIC_PARTITIONS (a warning)."""

from __future__ import annotations

import subprocess

import pytest

from bench.scale_out import RUN_DEPENDENT, differences, run_members, stored_documents
from tests.fixtures.pipeline import TXNMON, env_for, synthetic_rows
from txnmon.adapters import kafka

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# a suppressing rule and a shadow rule, so every collection compared has documents
RULES = """
version: scale-out
rules:
  velocity: {suppress_for: 30m}
  impossible_travel: {mode: shadow}
"""


@pytest.fixture
def rules_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return str(path)


def test_two_processes_store_what_one_process_stores(settings_factory, rules_file):
    rows = synthetic_rows(1_200, users=40, seed=5)
    rows.insert(600, {"transaction_id": "BAD", "user_id": "U001", "note": "no amount"})  # one rejection
    valid = len(rows) - 1
    stored = {}
    for members in (1, 2):
        s = settings_factory(topic_partitions=6, rules_file=rules_file, batch_max_records=100)
        run = run_members(s, members, rows, idle_s=4, timeout=240, transactions=valid)
        assert run["members"] == members
        stored[members] = stored_documents(s)

    one, two = stored[1], stored[2]
    assert len(one["transactions"]) == valid
    assert one["alerts"] and one["suppressed_alerts"] and one["shadow_alerts"], {k: len(v) for k, v in one.items()}
    assert differences(one, two) == []
    assert one == two
    # what was left out of the comparison is only when and where it was processed
    sample = next(iter(one["transactions"].values()))
    assert not RUN_DEPENDENT & set(sample) and sample["source"]["topic"] == "raw"



def _init(settings, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TXNMON, "init"], env=env_for(settings, **env), capture_output=True, text=True, timeout=120)


def test_init_refuses_a_state_changelog_partitioned_unlike_the_by_user_topic(settings_factory):
    s = settings_factory(create_topics=False, topic_partitions=6)
    kafka.ensure_topics(s, [t for t in s.pipeline_topics if t != s.topic_state])
    kafka.ensure_topics(s, [s.topic_state], partitions=3)
    done = _init(s)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{s.topic_by_user} has 6 partitions and {s.topic_state} 3" in done.stderr


def test_init_warns_when_topic_partitions_exceeds_the_existing_topics(settings_factory):
    s = settings_factory(topic_partitions=3)  # topics created with 3 partitions
    done = _init(s, TOPIC_PARTITIONS="6")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{s.topic_raw} has 3 partitions, TOPIC_PARTITIONS is 6" in done.stderr
    assert f"topic {s.topic_raw}: 3 partitions (exists)" in done.stdout
