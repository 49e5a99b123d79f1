"""One batch of the other event kinds (carts, stock, reviews) as `txnmon events` judges it, and how far
their event time is closed. Pure: times and settings' values come in.

A batch's records are judged one by one with `judge_event` (a record that raises is a `processing_error`
reject: no record stops a batch); the valid events are grouped by the collection that stores them, the
rejects keep their DLQ message and `rejected` document. An event whose id is already stored with other
content is found only by the store: `conflicts` turns those into rejects of their own (stage `store`),
as the processor does with a transaction id re-sent with other content.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from txnmon.core.batch import on_rejected, rejected_document
from txnmon.core.collection_names import CART_EVENTS, REVIEWS, STOCK_EVENTS
from txnmon.core.event_dlq import judge_event
from txnmon.core.records import DUPLICATE_ID_CONFLICT, Message, Rejection, SourceRecord

# where `txnmon events` stores each kind (docs/events.md)
COLLECTION_OF_KIND = {"carts": CART_EVENTS, "stock": STOCK_EVENTS, "reviews": REVIEWS}


@dataclass
class EventBatch:
    """What one polled batch becomes: events per collection (with the record each came from), the
    rejects' DLQ messages and documents, and per input partition the offset after it and the event
    times it brought."""

    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    origins: dict[str, list[SourceRecord]] = field(default_factory=dict)
    dlq: list[Message] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    times: dict[tuple[str, int], list[dt.datetime]] = field(default_factory=dict)
    consumed: int = 0

    @property
    def stored_count(self) -> int:
        return sum(len(docs) for docs in self.events.values())

    def reject(self, record: SourceRecord, rejection: Rejection, now: dt.datetime, stage: str,
               dlq_max_bytes: int) -> None:
        self.dlq.append(on_rejected(record, rejection, now, dlq_max_bytes))
        self.rejected.append(rejected_document(record, rejection, now, stage, ""))
        self.rejected_by_reason[rejection.reason] += 1


def judge_batch(records: Sequence[SourceRecord], kind_of_topic: Mapping[str, str], *, zone: ZoneInfo,
                now: dt.datetime, max_bytes: int, dlq_max_bytes: int) -> EventBatch:
    """Every record judged by the contract of its topic's kind (`kind_of_topic`: topic -> a kind of
    COLLECTION_OF_KIND). Offsets cover every record, good or bad: a bad one never holds its partition."""
    batch = EventBatch(consumed=len(records))
    for record in records:
        tp = (record.topic, record.partition)
        batch.offsets[tp] = max(batch.offsets.get(tp, 0), record.offset + 1)
        kind = kind_of_topic[record.topic]
        judged = judge_event(kind, record, zone=zone, now=now, max_bytes=max_bytes, dlq_max_bytes=dlq_max_bytes)
        if judged.event is None:
            assert judged.dlq is not None and judged.rejected is not None and judged.rejection is not None
            batch.dlq.append(judged.dlq)
            batch.rejected.append(judged.rejected)
            batch.rejected_by_reason[judged.rejection.reason] += 1
            continue
        collection = COLLECTION_OF_KIND[kind]
        batch.events.setdefault(collection, []).append(judged.event)
        batch.origins.setdefault(collection, []).append(record)
        batch.times.setdefault(tp, []).append(judged.event["event_time"])
    return batch


def conflict(collection: str, event_id: Any) -> Rejection:
    return Rejection(DUPLICATE_ID_CONFLICT,
                     f"{collection} id {str(event_id)[:200]!r} was stored before with different content; "
                     "the first is kept")


def _canonical(value: Any) -> Any:
    """A value as it reads back from MongoDB: datetimes aware UTC to the millisecond (BSON's
    precision), tuples as lists, mappings compared by content."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        aware = aware.astimezone(dt.UTC)
        return aware.replace(microsecond=aware.microsecond // 1000 * 1000)
    if isinstance(value, Mapping):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def same_event(ours: Mapping[str, Any], stored: Mapping[str, Any]) -> bool:
    """Whether a stored event is this one (a redelivery or a replay) rather than another with its id."""
    return _canonical(ours) == _canonical(stored)


def partition_mark(newest: Sequence[dt.datetime]) -> dt.datetime:
    """A partition's watermark from its k newest event times (sorted or not): the oldest of them, so one
    event dated far ahead cannot move it (core.watermark)."""
    return min(newest)


def closed_until(event_marks: Iterable[dt.datetime], processor_mark: dt.datetime | None,
                 lateness: dt.timedelta, *, idle_newest: dt.datetime | None = None) -> dt.datetime | None:
    """How far event time is closed for the analyses: nothing earlier can still arrive, up to lateness.

    The slowest of the event partitions seen (`event_marks`, one per partition) and the processor's
    slowest partition (the analyses join events with stored transactions), minus `lateness`. None while
    either is unknown: a transaction not yet stored must not make a cart look abandoned. `idle_newest`
    (given when the input has been idle long enough) is the newest event time seen: nothing else is
    coming, so everything up to it is closed, whatever the processor's mark.
    """
    if idle_newest is not None:
        return idle_newest
    marks = list(event_marks)
    if not marks or processor_mark is None:
        return None
    return min(min(marks), processor_mark) - lateness
