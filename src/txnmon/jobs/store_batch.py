"""Storing one processed batch: each destination is a sink with one `write(batch)`.

The processor (and the window replay) loop over the sinks in order and retry a sink's write
while it raises a `RetryableError` (an outage); every write is idempotent, so a retry or a
redelivered batch changes nothing that is already stored. Nothing here commits offsets: the
caller commits only after every sink has written.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore, WatermarksRepository
from txnmon.core.batch import BatchResult, conflict
from txnmon.core.collection_names import (
    ALERTS,
    REJECTED,
    SHADOW_ALERTS,
    SUPPRESSED_ALERTS,
    TOUCHED_HOURS,
    TRANSACTIONS,
)
from txnmon.core.records import STORE_FAILED, Message, Rejection
from txnmon.core.rollups import HOUR_FMT
from txnmon.core.state_codec import Raised, decode_user_state, encode_user_state
from txnmon.errors import (
    KafkaUnavailable,
    MessageRefused,
    ProducerLost,
    RetryableError,
    StopRequested,
    StoreRefused,
)
from txnmon.jobs.case_sink import CasesSink
from txnmon.jobs.notify import NotificationsSink, RoutesFeed

log = logging.getLogger("txnmon.stream")
T = TypeVar("T")

MAX_BACKOFF_S = 10.0


class Sink(Protocol):
    """A destination of a processed batch. `write` is idempotent and raises RetryableError on an outage."""

    name: str

    def write(self, batch: BatchResult) -> None: ...


def with_retry(
    action: Callable[[], T],
    *,
    sink: str,
    should_stop: Callable[[], bool],
    on_retry: Callable[[str], None] = lambda _: None,
) -> T:
    """Run `action` until it succeeds, backing off 0.5 s .. 10 s; only outages are retried.

    Never gives up on its own: an outage must not commit past unwritten data. A stop request
    while it keeps failing raises StopRequested (the batch stays uncommitted and is redelivered).
    """
    delay = 0.5
    attempt = 1
    while True:
        try:
            return action()
        except RetryableError as exc:
            on_retry(sink)
            if should_stop():
                raise StopRequested(f"{sink} still failing at shutdown: {exc}") from exc
            delay = max(delay, exc.retry_after)
            log.warning("%s unavailable (attempt %d): %s; retrying the batch in %.1fs",
                        sink, attempt, str(exc).split("\n")[0][:300], delay,
                        extra={"sink": sink, "attempt": attempt})
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
            attempt += 1


class TransactionsSink:
    """The batch's transactions, inserted once by transaction id.

    A transaction MongoDB refuses for good (not a race or an outage) goes to the DLQ as
    `store_failed`; one whose id is already stored with other content goes as
    `duplicate_id_conflict` (an identical copy is a harmless no-op). Either way its alerts and
    enriched message are dropped, so this sink runs first.
    """

    name = "mongodb"

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    def write(self, batch: BatchResult) -> None:
        docs = batch.transactions
        refused: dict[str, Rejection] = {}
        try:
            stored = self.store.insert_missing(TRANSACTIONS, docs)
            duplicates = stored.duplicate_ids
        except StoreRefused as exc:
            for index, why in sorted(exc.refused.items()):
                doc = docs[index]
                log.error("MongoDB refused transaction %s from %s: %s", doc["_id"], doc.get("source"), why)
                refused[doc["_id"]] = Rejection(STORE_FAILED, why)
            duplicates = exc.duplicate_ids
        conflicts = self._conflicts(docs, duplicates)
        batch.withdraw({**refused, **conflicts}, "store")
        batch.existing = len(duplicates) - len(conflicts)
        batch.inserted = len(batch.transactions) - batch.existing

    def _conflicts(self, docs: Sequence[dict[str, Any]], duplicate_ids: Sequence[str]) -> dict[str, Rejection]:
        """Stored copies whose content differs from this batch's: one read by `_id`, only when there are any."""
        if not duplicate_ids:
            return {}
        ours = {d["_id"]: d.get("content_hash") for d in docs}
        stored = self.store.find(TRANSACTIONS, {"_id": {"$in": list(duplicate_ids)}}, projection={"content_hash": 1})
        # documents stored before fingerprints existed carry none: nothing to compare, no conflict
        return {d["_id"]: conflict(d["_id"]) for d in stored
                if d.get("content_hash") is not None and d["content_hash"] != ours.get(d["_id"])}


class RejectedSink:
    """Every DLQ record as a document in `rejected`, keyed by its source position."""

    name = "mongodb"

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    def write(self, batch: BatchResult) -> None:
        if batch.rejected:
            self.store.insert_missing(REJECTED, batch.rejected)


class AlertsSink:
    """Raised, suppressed and shadow alerts, each in its own collection, keyed by alert id."""

    name = "mongodb"

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    def write(self, batch: BatchResult) -> None:
        for collection, docs in ((ALERTS, batch.alerts), (SUPPRESSED_ALERTS, batch.suppressed),
                                 (SHADOW_ALERTS, batch.shadow)):
            if docs:
                self.store.insert_missing(collection, docs)


class TouchedHoursSink:
    """After the batch's transactions and alerts are acknowledged: which event-time hours they touched.

    One small document per batch in `touched_hours`, written only once the data it points at is
    stored, so whoever sees the entry sees the data. The rollup job recomputes the hours of every
    entry still pending and then marks them done: no clock, no interval, nothing missed when a
    batch was retried through an outage or the scheduler was paused.
    """

    name = "mongodb"

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    def write(self, batch: BatchResult) -> None:
        hours = sorted({d["event_time"].strftime(HOUR_FMT) for d in batch.transactions})
        if not hours or not batch.next_offsets:
            return
        span = ",".join(f"{p}:{o}" for p, o in sorted(batch.next_offsets.items()))
        first = batch.transactions[0]["source"]
        self.store.insert_missing(TOUCHED_HOURS, [{
            "_id": f"{first['topic']}|{span}", "hours": hours, "transactions": len(batch.transactions),
            "acked_at": dt.datetime.now(dt.UTC), "pending": True}])


class WatermarkSink:
    """The batch's partitions' event-time watermarks, so a restart resumes them (late-event flags)."""

    name = "mongodb"

    def __init__(self, store: MongoStore, topic: str) -> None:
        self.store = store
        self.topic = topic

    def write(self, batch: BatchResult) -> None:
        if batch.watermarks:
            WatermarksRepository(self.store).save(self.topic, batch.watermarks)


def stub(message: Message, why: str) -> Message:
    key, value, headers = message
    return (key, b"", [*(headers or []), ("txnmon.refused", why.encode("utf-8", "replace")[:500]),
                       ("txnmon.truncated", str(len(value)).encode())])


def mongo_sinks(store: MongoStore, watermark_topic: str, routes: RoutesFeed | None = None) -> list[Sink]:
    """The MongoDB side of a judged batch, in order: transactions first (a refused or conflicting
    one becomes a DLQ record before anything else is written), the notifications outbox right after
    the alerts (both before the offsets are committed, so a crash redoes both or neither is needed),
    the touched hours after the data."""
    outbox: list[Sink] = [NotificationsSink(store, routes)] if routes is not None else []
    return [TransactionsSink(store), RejectedSink(store), AlertsSink(store), *outbox, CasesSink(store),
            TouchedHoursSink(store), WatermarkSink(store, watermark_topic)]


def write_batch(batch: BatchResult, sinks: Sequence[Sink], *, should_stop: Callable[[], bool],
                on_retry: Callable[[str], None] = lambda _: None) -> tuple[int, int]:
    """Write everything a batch produced, sink by sink; return (transactions inserted, already stored)."""
    for sink in sinks:
        with_retry(lambda s=sink: s.write(batch), sink=sink.name, should_stop=should_stop, on_retry=on_retry)
    return batch.inserted, batch.existing


# --- the Kafka side of a batch: one transaction with the input offsets ----------------------------


@dataclass
class Outbound:
    """Everything a batch sends to Kafka, committed atomically with the offsets it consumed."""

    by_user: list[Message] = field(default_factory=list)  # raw messages re-keyed by user
    by_user_timestamps: list[int] = field(default_factory=list)  # their raw timestamps, kept for windows
    dlq: list[Message] = field(default_factory=list)
    enriched: list[Message] = field(default_factory=list)
    state: list[tuple[int, Message]] = field(default_factory=list)  # (state partition, user -> state or tombstone)

    def __len__(self) -> int:
        return len(self.by_user) + len(self.dlq) + len(self.enriched) + len(self.state)


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
            if self._already_committed(offsets):
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


def state_messages(detector_export: Mapping[str, tuple[bytes, Raised]], dropped: Iterable[str],
                   partition_of: Mapping[str, int]) -> list[tuple[int, Message]]:
    """The changelog records of a batch: each touched user's state, a tombstone for each evicted one."""
    out: list[tuple[int, Message]] = []
    for user_id, (events, raised) in detector_export.items():
        out.append((partition_of[user_id], (user_id.encode("utf-8"), encode_user_state(events, raised), None)))
    for user_id in dropped:
        if user_id in partition_of and user_id not in detector_export:
            out.append((partition_of[user_id], (user_id.encode("utf-8"), b"", None)))
    return out
