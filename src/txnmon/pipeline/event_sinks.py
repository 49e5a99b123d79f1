"""The write side of `txnmon events`: a judged batch of cart, stock and review events into MongoDB and
the DLQ, the event topics' watermarks, and the offsets committed last (at-least-once).

Every write is idempotent: events are inserted by `_id` (the first write of an id wins), rejects by
their source position, watermarks by topic and partition. So a batch written twice (a retry after an
outage, a redelivery after a crash before the commit) changes nothing; only its DLQ copies may be sent
again, which the `rejected` collection, keyed by position, holds once.

`EventsPorts` is what the service loop talks to; `txnmon.services.events_wiring` builds the production
one and the unit tests pass their own (tests/unit/services/test_events_loop.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.core.event_batch import EventBatch, closed_until, conflict, partition_views, same_event
from txnmon.core.records import PROCESSING_ERROR, STORE_FAILED, Message, Rejection, SourceRecord
from txnmon.errors import KafkaUnavailable, MessageRefused, StoreRefused
from txnmon.settings import Settings

log = logging.getLogger("txnmon.events")

# what the store learnt about a batch's events: per collection, index in `batch.events[collection]` -> why
Refusals = dict[str, dict[int, Rejection]]


class EventsPorts(Protocol):
    """What the `txnmon events` loop writes to and reads from; each call raises RetryableError on an outage."""

    def poll(self, timeout_ms: int, max_records: int) -> list[SourceRecord]: ...

    def store_events(self, batch: EventBatch) -> Refusals: ...

    def store_rejected(self, batch: EventBatch) -> None: ...

    def send_dlq(self, messages: Sequence[Message]) -> None: ...

    def save_marks(self, topic: str, marks: Mapping[int, Mapping[str, Any]]) -> None: ...

    def load_marks(self, topic: str) -> dict[int, dict[str, Any]]: ...

    def end_offsets(self, topic: str) -> dict[int, int]: ...

    def processor_mark(self) -> dt.datetime | None: ...

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None: ...

    def close(self) -> None: ...


class ClosedTimeSource(Protocol):
    """What closed event time is computed from: every member's stored watermark documents per topic
    (`newest`, `next_offset`, `stored_at`), the broker's end offsets, the processor's watermark."""

    def load_marks(self, topic: str) -> dict[int, dict[str, Any]]: ...

    def end_offsets(self, topic: str) -> dict[int, int]: ...

    def processor_mark(self) -> dt.datetime | None: ...


def closed_event_time(source: ClosedTimeSource, settings: Settings, *, now: dt.datetime,
                      quiet_after_s: float | None = None) -> dt.datetime | None:
    """How far event time is closed (`core.event_batch.closed_until`) over the three event topics: the one
    function `txnmon events` and `txnmon stock|sentiment run` both use. `quiet_after_s` (default
    EVENTS_IDLE_CLOSE_SECONDS) is how long a drained partition must be quiet to stop holding time back."""
    quiet = dt.timedelta(seconds=settings.events_idle_close_seconds if quiet_after_s is None else quiet_after_s)
    views = [view for topic in settings.event_topics
             for view in partition_views(source.load_marks(topic), source.end_offsets(topic), now=now,
                                         quiet_after=quiet)]
    return closed_until(views, source.processor_mark(), dt.timedelta(seconds=settings.events_lateness_seconds))


def store_events(store: MongoStore, batch: EventBatch) -> Refusals:
    """Insert each collection's events by `_id`. Ids already stored are read back: a copy with the same
    content is this event again (nothing to do), one with other content a conflict; documents MongoDB
    refuses for good are `store_failed`. Both are returned for the DLQ; the batch goes on."""
    found: Refusals = {}
    for collection, docs in batch.events.items():
        refused: dict[int, Rejection] = {}
        try:
            duplicates = store.insert_missing(collection, docs).duplicate_ids
        except StoreRefused as exc:
            if exc.refused:
                refused = {i: Rejection(STORE_FAILED, why) for i, why in exc.refused.items()}
                duplicates = exc.duplicate_ids
            else:  # refused for good without naming a document: find the ones at fault one by one
                refused, duplicates = _one_by_one(store, collection, docs)
        if duplicates:
            stored = {d["_id"]: d for d in store.find(collection, {"_id": {"$in": list(set(duplicates))}})}
            for i, doc in enumerate(docs):
                if i not in refused and doc["_id"] in stored and not same_event(doc, stored[doc["_id"]]):
                    refused[i] = conflict(collection, doc["_id"])
        if refused:
            found[collection] = refused
    return found


def _one_by_one(store: MongoStore, collection: str, docs: Sequence[dict[str, Any]]) -> tuple[dict[int, Rejection],
                                                                                           list[Any]]:
    """Each document alone: those refused become `processing_error` rejects (DLQ and `rejected`, nothing
    lost), the others are stored. Outages (StoreUnavailable) still raise, for the caller's retry."""
    refused: dict[int, Rejection] = {}
    duplicates: list[Any] = []
    for i, doc in enumerate(docs):
        try:
            duplicates += store.insert_missing(collection, [doc]).duplicate_ids
        except StoreRefused as exc:
            refused[i] = Rejection(PROCESSING_ERROR, f"StoreRefused: {exc}"[:2000])
    return refused, duplicates


def send_dlq(producer: Any, topic: str, messages: Sequence[Message]) -> None:
    """Send and wait for every acknowledgement; KafkaUnavailable when some were not, and the caller's
    retry sends the batch's copies again (a copy may reach the DLQ twice: at-least-once). A message
    refused for good is logged: its `rejected` document is stored already."""
    if not messages:
        return
    try:
        failed = kafka.send_confirmed(producer, topic, messages)
    except MessageRefused as exc:
        log.error("the DLQ topic refused %d message(s) for good: %s", len(exc.refused), exc.refused)
        failed = exc.failed
    if failed:
        raise KafkaUnavailable(f"{len(failed)} of {len(messages)} DLQ messages not acknowledged")
