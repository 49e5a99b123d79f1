"""The Kafka side of a batch: one transaction with its messages, its users' state and the offsets.

`TransactionalPublisher` sends an `Outbound` and commits the consumed offsets in the same Kafka
transaction; `KafkaStateStore` reads a partition's state back from the compacted changelog.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from txnmon.adapters import kafka
from txnmon.core.records import Message
from txnmon.core.state_codec import Raised, decode_user_state
from txnmon.errors import KafkaUnavailable, MessageRefused, ProducerLost
from txnmon.pipeline.ports import Outbound

log = logging.getLogger("txnmon.stream")


def stub(message: Message, why: str) -> Message:
    key, value, headers = message
    return (key, b"", [*(headers or []), ("txnmon.refused", why.encode("utf-8", "replace")[:500]),
                       ("txnmon.truncated", str(len(value)).encode())])


class TransactionalPublisher:
    """Sends a batch's messages and commits the consumed offsets in one Kafka transaction.

    A crash anywhere before the commit leaves none of it visible to read_committed readers and the
    offsets where they were: the batch is judged again from the state committed with them, so the
    verdicts, the messages and (idempotently) the MongoDB documents come out the same.
    """

    def __init__(self, make_producer: Callable[[], Any], member: Any, topics: Any) -> None:
        self.make_producer = make_producer
        self.producer: Any = make_producer()
        self.replaced = False  # the producer was lost: the next publish starts with a new one
        # a lost producer's last commit may have happened: until the group's offsets say whether it
        # did, the batch must not be sent again (cleared only once that read succeeded)
        self.unverified = False
        self.member = member
        self.topics = topics

    def close(self) -> None:
        kafka.close_producer(self.producer)

    def publish(self, out: Outbound, offsets: Mapping[tuple[str, int], int]) -> None:
        """KafkaUnavailable: call again with the same batch (a transaction still open is committed
        again; an aborted or lost one is redone); CommitRefused: the group rebalanced, nothing committed."""
        if self.replaced:
            # A new producer with the same transactional.id completes or aborts whatever the lost one
            # left; if that was this batch's commit, the group's offsets say so and the batch is done.
            self.producer = self.make_producer()
            self.replaced = False
            self.unverified = True
        if self.unverified:
            # the read may fail (KafkaUnavailable): the flag stays, and the next attempt checks again
            done = self._already_committed(offsets)
            self.unverified = False
            if done:
                return
        try:
            if not self.producer.in_transaction:
                self._produce(out)
            kafka.commit_member_transaction(self.producer, self.member, offsets)
        except ProducerLost as exc:
            log.warning("transactional producer lost (%s); sending the batch again with a new one", exc)
            kafka.close_producer(self.producer)
            self.replaced = True
            raise KafkaUnavailable("the batch's transaction was lost with its producer", retry_after=0.0) from exc

    def _already_committed(self, offsets: Mapping[tuple[str, int], int]) -> bool:
        committed = self.member.committed(offsets)
        return all(committed.get(tp, -1) >= offset for tp, offset in offsets.items())

    def _produce(self, out: Outbound) -> None:
        kafka.begin_transaction(self.producer)
        t = self.topics
        for i, message in enumerate(out.by_user):
            self._send(t.topic_by_user, message, timestamp=out.by_user_timestamps[i] if out.by_user_timestamps else 0)
        for message in out.dlq:
            self._send(t.topic_dlq, message)
        for message in out.enriched:
            self._send(t.topic_enriched, message)
        for partition, message in out.state:
            self._send(t.topic_state, message, partition=partition)

    def _send(self, topic: str, message: Message, partition: int | None = None, timestamp: int = 0) -> None:
        try:
            kafka.produce_to(self.producer, topic, message, partition=partition, timestamp=timestamp)
        except MessageRefused as exc:
            # refused for good (too large): a stub with the same key and the reason, never a blocked partition
            log.error("%s refused a message (%d bytes): %s; sending a stub", topic, len(message[1]), exc.refused[0])
            kafka.produce_to(self.producer, topic, stub(message, exc.refused[0]), partition=partition)


class KafkaStateStore:
    """The detector's per-user state, restored from the compacted changelog partition by partition."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings

    def restore(self, partition: int) -> Iterator[tuple[str, tuple[bytes, Raised] | None]]:
        """(user id, (packed events, raised alerts)) in changelog order; None for a user whose state
        was deleted."""
        for record in kafka.read_partition(self.settings, self.settings.topic_state, partition):
            if record.key is None:
                continue
            user_id = record.key.decode("utf-8")
            yield user_id, decode_user_state(record.value) if record.value else None
