"""Where a topic and a consumer group stand, asked without joining the group: end offsets (all, or
up to the last stable one), the offsets at a time, a group's committed offsets and its lag. The
lag counts records, not the transaction markers of a transactional topic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from txnmon.adapters.kafka.client_errors import _MISSING, _Err, _retriable, retrying_read
from txnmon.adapters.kafka.clients import ADMIN_TIMEOUT_S, make_admin, make_consumer
from txnmon.adapters.kafka.consume import _consumed
from txnmon.settings import Settings

log = logging.getLogger("txnmon.adapters.kafka")


def end_offsets(settings: Settings, topic: str, *, committed: bool = False,
                admin: AdminClient | None = None) -> dict[int, int]:
    """Latest offset (next to be written: the high-water mark) of every partition of `topic`; with
    `committed`, the last stable offset (before the first record of a transaction still open).
    Transient errors (a topic just created, its leaders not elected yet) are waited out briefly.
    `admin`: a client to reuse (a caller asking often; making one checks the broker first)."""
    admin = admin or make_admin(settings)
    isolation = IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
    return retrying_read(lambda: _list_offsets(admin, topic, OffsetSpec.latest(), isolation),
                         f"end offsets of {topic}")


def offsets_for_time(settings: Settings, topic: str, timestamp_ms: int) -> dict[int, int]:
    """Per partition, the first offset whose timestamp is at or after `timestamp_ms` (the end offset if none)."""
    admin = make_admin(settings)
    found = retrying_read(lambda: _list_offsets(admin, topic, OffsetSpec.for_timestamp(timestamp_ms),
                                                IsolationLevel.READ_UNCOMMITTED),
                          f"offsets of {topic} at {timestamp_ms}")
    if not found:
        return {}
    ends = end_offsets(settings, topic)
    return {p: (found[p] if found[p] >= 0 else ends.get(p, 0)) for p in sorted(found)}


def _list_offsets(admin: AdminClient, topic: str, spec: OffsetSpec, isolation: IsolationLevel) -> dict[int, int]:
    """One attempt: the topic's partitions, then one offset per partition ({} if the topic does not exist)."""
    parts = _readable_partitions(admin, topic)
    if not parts:
        return {}
    futures = admin.list_offsets({TopicPartition(topic, p): spec for p in parts},
                                 isolation_level=isolation, request_timeout=ADMIN_TIMEOUT_S)
    return {tp.partition: fut.result().offset for tp, fut in sorted(futures.items(), key=lambda i: i[0].partition)}


def _readable_partitions(admin: AdminClient, topic: str) -> list[int]:
    """The topic's partitions, [] if it does not exist. A transient metadata error (a partition with no
    leader yet) is raised, for `retrying_read` to wait out, where it used to read as "no topic"."""
    meta = admin.list_topics(topic=topic, timeout=ADMIN_TIMEOUT_S).topics.get(topic)
    if meta is None:
        return []
    if meta.error is not None:
        if meta.error.code() not in _MISSING and _retriable(meta.error):
            raise KafkaException(meta.error)
        return []
    leaderless = [p.id for p in meta.partitions.values() if p.leader < 0]
    if leaderless:
        raise KafkaException(_Err(_Err.LEADER_NOT_AVAILABLE, f"{topic} partitions {sorted(leaderless)} have no leader"))
    return sorted(meta.partitions)


def committed_offsets(settings: Settings, group_id: str, topic: str) -> dict[int, int]:
    admin = make_admin(settings)

    def read() -> Any:
        futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)],
                                                    request_timeout=ADMIN_TIMEOUT_S)
        return futures[group_id].result()

    # right after the broker's first start the offsets topic is still being created (COORDINATOR_*)
    result = retrying_read(read, f"committed offsets of group {group_id}")
    return {
        tp.partition: tp.offset
        for tp in result.topic_partitions or ()
        if tp.topic == topic and tp.offset >= 0 and tp.error is None
    }

LAG_PROBE_MAX = 16  # a partition this close to its end is read to count its records exactly


def consumer_lag(settings: Settings, group_id: str, topic: str) -> dict[int, int]:
    """Records the group has not committed yet, per partition.

    A topic written in Kafka transactions (transactions.by_user) has a commit marker after each
    transaction's records; it takes an offset but no consumer ever receives it, so the group's offset
    stops one short of the end and an idle pipeline showed a lag of 1 per partition. A partition
    within LAG_PROBE_MAX of its end is read from the committed offset (read_committed, no group) and
    its lag is the records found, plus the offsets of a transaction still open (their records are on
    their way); farther behind, the offset difference stands (it counts markers too). A partition the
    group never committed on counts from its start.
    """
    ends = end_offsets(settings, topic)
    done = committed_offsets(settings, group_id, topic)
    lag = {p: end - done.get(p, 0) for p, end in ends.items()}
    near = {p: done.get(p, 0) for p, n in lag.items() if 0 < n <= LAG_PROBE_MAX}
    if near:
        committed = end_offsets(settings, topic, committed=True)
        stable = {p: min(committed.get(p, ends[p]), ends[p]) for p in near}
        for p, records in _records_left(settings, topic, near, stable).items():
            lag[p] = records + ends[p] - stable[p]
    return lag


def _records_left(settings: Settings, topic: str, starts: Mapping[int, int], ends: Mapping[int, int],
                  timeout_s: float = 2.0) -> dict[int, int]:
    """Per partition, the records between `starts` and `ends` (at most the last stable offsets) that a
    read_committed consumer receives: markers and aborted records are skipped. Partitions not read to
    their end in time are left out (logged): their offset difference stands."""
    consumer = make_consumer(settings, group_id=None, **{"enable.partition.eof": True})
    counts = dict.fromkeys(starts, 0)
    reached = {p for p in starts if starts[p] >= ends[p]}
    deadline = time.monotonic() + timeout_s
    try:
        consumer.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
        while len(reached) < len(starts) and time.monotonic() < deadline:
            batch = _consumed(consumer.consume(LAG_PROBE_MAX * len(starts), 0.2),
                              on_eof=lambda _t, p, offset: reached.add(p) if offset >= ends[p] else None)
            for r in batch:
                if r.offset < ends[r.partition]:
                    counts[r.partition] += 1
                if r.offset >= ends[r.partition] - 1:
                    reached.add(r.partition)
    finally:
        consumer.close()
    if len(reached) < len(starts):
        log.warning("lag of %s: partitions %s not read to their end within %.0fs, their offset difference is shown",
                    topic, sorted(set(starts) - reached), timeout_s)
    return {p: n for p, n in counts.items() if p in reached}
