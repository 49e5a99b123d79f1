"""Topic creation and a produce/consume round trip against the real Kafka broker."""

from __future__ import annotations

import time

import pytest

from txnmon.adapters import kafka

pytestmark = pytest.mark.integration


def test_ensure_topics_creates_three_partitions_once(settings_factory):
    settings = settings_factory(create_topics=False)
    created = kafka.ensure_topics(settings)
    assert sorted(created) == sorted(settings.pipeline_topics)
    assert kafka.ensure_topics(settings) == []
    infos = kafka.describe_topics(settings, [settings.topic_raw])
    assert [(i.name, i.partitions) for i in infos] == [(settings.topic_raw, 3)]


def test_round_trip_keyed_messages_and_offsets(isolated_settings):
    s = isolated_settings
    producer = kafka.make_producer(s)
    sent = kafka.send_all(producer, s.topic_raw, [(f"U{i % 4}".encode(), b'{"n": %d}' % i) for i in range(40)])
    producer.close()
    assert sent == 40
    assert sum(kafka.end_offsets(s, s.topic_raw).values()) == 40
    member = kafka.GroupMember(s, [s.topic_raw], s.consumer_group, lambda change, partitions: None)
    seen: dict[bytes, set[int]] = {}
    next_offsets: dict[tuple[str, int], int] = {}
    for _ in range(50):
        for r in member.poll(500, 1000):
            seen.setdefault(r.key, set()).add(r.partition)
            next_offsets[(r.topic, r.partition)] = r.offset + 1
        if sum(next_offsets.values()) == 40:
            break
    # one key always lands on one partition: per-user order is what the rules depend on
    assert len(seen) == 4 and all(len(parts) == 1 for parts in seen.values())
    # the offsets are committed in a transaction, as the processor does
    producer = kafka.make_transactional_producer(s, f"txnmon-test-{s.consumer_group}")
    try:
        kafka.begin_transaction(producer)
        kafka.commit_member_transaction(producer, member, next_offsets)
    finally:
        producer.close()
        member.close()
    # the offsets show once the coordinator has written the transaction's markers, soon after
    deadline = time.monotonic() + 10
    while kafka.consumer_lag(s, s.consumer_group, s.topic_raw) != {0: 0, 1: 0, 2: 0} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kafka.consumer_lag(s, s.consumer_group, s.topic_raw) == {0: 0, 1: 0, 2: 0}
