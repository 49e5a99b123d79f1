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
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from include.connectors import kafka
from include.connectors.mongo import MongoStore
from include.core.batch import BatchResult, conflict
from include.core.collection_names import (
    ALERTS,
    REJECTED,
    SHADOW_ALERTS,
    SUPPRESSED_ALERTS,
    TOUCHED_HOURS,
    TRANSACTIONS,
)
from include.core.records import STORE_FAILED, Message, Rejection
from include.core.rollups import HOUR_FMT
from include.errors import KafkaUnavailable, MessageRefused, RetryableError, StopRequested, StoreRefused

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


class UserStateSink:
    """The state of every user the batch touched, so any member can resume them."""

    name = "mongodb"

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    def write(self, batch: BatchResult) -> None:
        if batch.user_state:
            self.store.save_user_state(batch.user_state)


class WatermarkSink:
    """The batch's partitions' event-time watermarks, so a restart resumes them (late-event flags)."""

    name = "mongodb"

    def __init__(self, store: MongoStore, topic: str) -> None:
        self.store = store
        self.topic = topic

    def write(self, batch: BatchResult) -> None:
        if batch.watermarks:
            self.store.save_watermarks(self.topic, batch.watermarks)


class TopicSink:
    """Messages of the batch to one Kafka topic, each acknowledged; a retry resends only the unacknowledged.

    A message the broker refuses for good (too large, invalid) cannot block the partition: it is
    replaced by a stub with the same key and headers saying why (`txnmon.refused`, and
    `txnmon.truncated` with the original length); the full content is in MongoDB.
    """

    def __init__(self, name: str, producer: Any, topic: str, messages: Callable[[BatchResult], list[Message]]) -> None:
        self.name = name
        self.producer = producer
        self.topic = topic
        self.messages = messages

    def write(self, batch: BatchResult) -> None:
        pending = batch.unsent.setdefault(self.name, list(self.messages(batch)))
        if not pending:
            return
        try:
            failed = kafka.send_confirmed(self.producer, self.topic, pending)
        except MessageRefused as exc:
            for index, why in exc.refused.items():
                log.error("%s refused a message (%d bytes): %s; sending a stub", self.topic,
                          len(pending[index][1]), why)
            batch.unsent[self.name] = [stub(pending[i], exc.refused[i]) for i in sorted(exc.refused)] + [
                pending[i] for i in exc.failed]
            raise KafkaUnavailable(f"{len(exc.refused)} message(s) to {self.topic} refused; resending as stubs",
                                   retry_after=0.0) from exc
        batch.unsent[self.name] = [pending[i] for i in failed]
        if failed:
            raise KafkaUnavailable(f"{len(failed)} of {len(pending)} messages to {self.topic} not acknowledged")


def stub(message: Message, why: str) -> Message:
    key, value, headers = message
    return (key, b"", [*(headers or []), ("txnmon.refused", why.encode("utf-8", "replace")[:500]),
                       ("txnmon.truncated", str(len(value)).encode())])


def default_sinks(store: MongoStore, producer: Any, topic_enriched: str, topic_dlq: str, *,
                  save_user_state: bool = True, topic_raw: str | None = None) -> list[Sink]:
    """The processor's sinks, in the order that keeps every guarantee: transactions first (a
    refused one becomes a DLQ record before the DLQ is written), the enriched topic last."""
    sinks: list[Sink] = [
        TransactionsSink(store),
        RejectedSink(store),
        TopicSink("kafka-dlq", producer, topic_dlq, lambda b: b.dlq),
        AlertsSink(store),
        TouchedHoursSink(store),
    ]
    if save_user_state:
        sinks.append(UserStateSink(store))
    if topic_raw is not None:
        sinks.append(WatermarkSink(store, topic_raw))
    sinks.append(TopicSink("kafka-enriched", producer, topic_enriched, lambda b: b.enriched))
    return sinks


def write_batch(batch: BatchResult, sinks: Sequence[Sink], *, should_stop: Callable[[], bool],
                on_retry: Callable[[str], None] = lambda _: None) -> tuple[int, int]:
    """Write everything a batch produced, sink by sink; return (transactions inserted, already stored)."""
    for sink in sinks:
        with_retry(lambda s=sink: s.write(batch), sink=sink.name, should_stop=should_stop, on_retry=on_retry)
    return batch.inserted, batch.existing
