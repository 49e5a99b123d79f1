"""The processor's input: a consumer-group member on several topics (the raw input and the by-user
repartition topic) that yields plain records and reports its assignment changes. It never
commits by itself: its offsets are committed inside a transaction (`commit_member_transaction`), or,
for an at-least-once member (`txnmon events`), by `commit` once the batch's writes are done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from txnmon.adapters.kafka.client_errors import _REBALANCED, KafkaError, _error, _retriable
from txnmon.adapters.kafka.clients import _partitions, make_consumer
from txnmon.adapters.kafka.consume import lag_of, poll_records
from txnmon.core.records import SourceRecord
from txnmon.errors import CommitRefused, KafkaUnavailable, TopicMissing
from txnmon.settings import Settings

TopicPartitionKey = tuple[str, int]


class GroupMember:
    """A consumer-group member on several topics (the raw input and the by-user repartition topic),
    whose offsets are committed inside a transaction (`commit_member_transaction`).

    `on_change("assigned"|"revoked", [(topic, partition), ...])` runs inside `poll`.
    """

    def __init__(self, settings: Settings, topics: Sequence[str], group_id: str,
                 on_change: Callable[[str, list[TopicPartitionKey]], None], wait_s: float = 15.0,
                 **overrides: Any) -> None:
        self.topics = list(topics)
        self.consumer = make_consumer(settings, group_id=group_id, **overrides)
        try:
            deadline = time.monotonic() + wait_s
            for topic in self.topics:
                while not _partitions(self.consumer, topic, max(0.1, min(5.0, deadline - time.monotonic()))):
                    if time.monotonic() > deadline:
                        raise TopicMissing(f"topic {topic!r} does not exist (run `txnmon init`)")
                    time.sleep(0.2)

            # the topics' partitions are looked up first (above): a group leader that joins before its
            # client has a topic's metadata assigns nothing, and recovers only on a later metadata refresh.
            # The client assigns (or unassigns) the partitions itself after each callback returns; ones
            # lost without a clean revoke (session timeout, max.poll.interval.ms exceeded) are "revoked".
            def assigned(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
                on_change("assigned", sorted((tp.topic, tp.partition) for tp in partitions))

            def revoked(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
                on_change("revoked", sorted((tp.topic, tp.partition) for tp in partitions))

            self.consumer.subscribe(self.topics, on_assign=assigned, on_revoke=revoked, on_lost=revoked)
        except BaseException:
            self.consumer.close()
            raise

    def poll(self, timeout_ms: int, max_records: int) -> list[SourceRecord]:
        try:
            return poll_records(self.consumer, timeout_ms, max_records)
        except KafkaError as exc:
            raise KafkaUnavailable(f"poll failed: {exc}", retry_after=1.0) from exc

    def commit(self, offsets: Mapping[TopicPartitionKey, int]) -> None:
        """Commit these offsets (the next offset to read, per partition) and wait for the broker.

        KafkaUnavailable when it may succeed later; CommitRefused when the group moved on without this
        member (its partitions' new owner reads the batch again: at-least-once)."""
        if not offsets:
            return
        try:
            self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())],
                                 asynchronous=False)
        except KafkaException as exc:
            err = _error(exc)
            if err is not None and err.code() in _REBALANCED:
                raise CommitRefused(f"offsets not committed, the group rebalanced: {exc}") from exc
            if _retriable(err) or err is None or not err.fatal():
                raise KafkaUnavailable(f"committing offsets failed: {exc}", retry_after=1.0) from exc
            raise

    def group_metadata(self) -> Any:
        return self.consumer.consumer_group_metadata()

    def committed(self, partitions: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """The group's committed offsets for these partitions (KafkaUnavailable if it cannot say)."""
        try:
            found = self.consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=10.0)
        except KafkaException as exc:
            raise KafkaUnavailable(f"reading committed offsets failed: {exc}") from exc
        return {(tp.topic, tp.partition): tp.offset for tp in found}

    def lag(self) -> int | None:
        try:
            return lag_of(self.consumer)
        except KafkaError:
            return None  # a metric is not worth failing a committed batch for

    def close(self) -> None:
        self.consumer.close()
