"""Issue #31: a generated day's carts, stock events and reviews replayed to their own topics on the
real Kafka (created with the pipeline's topics, as `txnmon init` does) and read back, keyed by their
kind's key field; a file with a bad row sends nothing."""

from __future__ import annotations

import json

import pytest

from txnmon.adapters import kafka
from txnmon.core.event_contracts import EVENT_KINDS
from txnmon.errors import InvalidInputFile
from txnmon.jobs import replay
from txnmon.synthetic.events import generate_events, write_events
from txnmon.synthetic.generator import GeneratorSpec, generate

pytestmark = pytest.mark.integration
TOPICS = {"carts": "topic_carts", "stock": "topic_inventory", "reviews": "topic_reviews"}


def _read_all(settings, topic: str) -> list:
    parts = kafka.describe_topics(settings, [topic])[0].partitions
    return [r for p in range(parts) for r in kafka.read_partition(settings, topic, p)]


def test_each_kind_replays_to_its_own_topic_and_reads_back(settings_factory, tmp_path):
    s = settings_factory(create_topics=False)
    created = kafka.ensure_topics(s, s.init_topics)
    assert set(s.event_topics) <= set(created)
    spec = GeneratorSpec(rows=60, users=10, seed=4)
    tx = generate(spec)
    frames = generate_events(tx, spec, ["carts", "stock", "reviews"])
    frames["carts"] = frames["carts"].head(40)
    paths = write_events(frames, tmp_path)
    for kind, path in paths.items():
        summary = replay.replay_csv(s, path, kind=kind)
        topic = getattr(s, TOPICS[kind])
        assert (summary.topic, summary.rows_sent) == (topic, len(frames[kind]))
        records = _read_all(s, topic)
        contract = EVENT_KINDS[kind]
        ids = contract.columns[0]
        got = {json.loads(r.value)[ids]: r for r in records}
        assert sorted(got) == sorted(frames[kind][ids])
        for record in records:
            body = json.loads(record.value)
            assert record.key == str(body[contract.key_field]).encode()
            assert "" not in body.values()  # empty cells are dropped, numbers are numbers
        assert _read_all(s, s.topic_raw) == []  # nothing of these kinds reaches the transactions' topic


def test_a_file_with_a_bad_row_sends_nothing(settings_factory, tmp_path):
    s = settings_factory(create_topics=False)
    kafka.ensure_topics(s, s.event_topics)
    path = tmp_path / "reviews.csv"
    path.write_text("review_id,user_id,product_id,rating,text,timestamp\n"
                    "R1,U1,Laptop,5,great,2025-10-04T10:00:00Z\nR2,U1,Laptop,7,odd,2025-10-04T10:00:00Z\n")
    with pytest.raises(InvalidInputFile, match="line 3: bad_field: rating"):
        replay.replay_csv(s, path, kind="reviews")
    assert _read_all(s, s.topic_reviews) == []


def test_txnmon_init_creates_the_event_topics(settings_factory):
    import subprocess

    from tests.fixtures.pipeline import TXNMON, env_for

    s = settings_factory()  # the pipeline's topics exist; the event topics do not yet
    done = subprocess.run([TXNMON, "init"], env=env_for(s), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    for topic in s.event_topics:
        assert f"topic {topic}: 3 partitions (created)" in done.stdout
    assert f"topic {s.topic_raw}: 3 partitions (exists)" in done.stdout
