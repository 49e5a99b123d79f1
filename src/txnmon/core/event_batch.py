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
    firsts: dict[tuple[str, int], int] = field(default_factory=dict)  # per partition, the batch's first offset
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
        batch.firsts[tp] = min(batch.firsts.get(tp, record.offset), record.offset)
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


@dataclass(frozen=True)
class PartitionView:
    """One event partition as closed time sees it: from the watermarks every member stored, and the
    broker's end offset."""

    mark: dt.datetime | None  # `partition_mark` of its stored newest event times; None before any
    lag: int  # records on the broker not stored yet (end offset - the stored next offset)
    quiet: bool  # no batch of it stored for EVENTS_IDLE_CLOSE_SECONDS


def partition_views(stored: Mapping[int, Mapping[str, Any]], ends: Mapping[int, int], *, now: dt.datetime,
                    quiet_after: dt.timedelta) -> list[PartitionView]:
    """Every partition of one topic (those the broker lists and those with a stored document): `stored`
    is per partition the watermark document (`newest`, `next_offset`, `stored_at`), `ends` the end offsets.
    A partition never stored reads from offset 0 (its lag counts everything; a topic whose start was
    deleted by retention shows lag until its first batch is stored)."""
    views = []
    for p in sorted(set(stored) | set(ends)):
        doc = stored.get(p) or {}
        newest = list(doc.get("newest") or [])
        stored_at = doc.get("stored_at")
        if isinstance(stored_at, dt.datetime) and stored_at.tzinfo is None:
            stored_at = stored_at.replace(tzinfo=dt.UTC)  # as MongoDB reads it back
        lag = max(0, ends.get(p, 0) - int(doc.get("next_offset") or 0))
        quiet = stored_at is None or now - stored_at >= quiet_after
        views.append(PartitionView(partition_mark(newest) if newest else None, lag, quiet))
    return views


def closed_until(partitions: Iterable[PartitionView], processor_mark: dt.datetime | None,
                 lateness: dt.timedelta) -> dt.datetime | None:
    """How far event time is closed for the analyses: nothing earlier can still arrive, up to lateness.

    None while the processor's mark is unknown (the analyses join events with stored transactions: a
    sale not yet stored must not be skipped), while no partition has a mark, or while a partition with
    lag has none (its backlog is older than anything known). Otherwise the slowest mark of the partitions
    still waiting for input and the processor's mark, minus `lateness`; a drained partition (no lag)
    quiet for EVENTS_IDLE_CLOSE_SECONDS is left out, so a sparse partition does not hold the others back.
    When every partition is drained and quiet (the whole group's input is idle), the most advanced
    partition's mark, capped at the processor's: a mark, never the newest raw event time, since the
    contracts accept event times up to a day ahead and the walks handle each event time once.
    """
    views = list(partitions)
    marks = [v.mark for v in views if v.mark is not None]
    if processor_mark is None or not marks or any(v.lag > 0 and v.mark is None for v in views):
        return None
    waiting = [v.mark for v in views if v.mark is not None and not (v.lag == 0 and v.quiet)]
    if waiting:
        return min(min(waiting), processor_mark) - lateness
    if all(v.lag == 0 and v.quiet for v in views):
        return min(max(marks), processor_mark)
    # drained and quiet partitions with marks, others without a mark but busy (only rejects so far)
    return min(max(marks), processor_mark) - lateness


def capped_until(requested: dt.datetime | None, closed: dt.datetime | None) -> tuple[dt.datetime | None, bool]:
    """What a run by hand walks to: `requested` (its --until), never past `closed` (what `txnmon events`
    has closed, since the walks handle each event time once: a time walked before its events are stored
    skips them for good); `closed` when nothing is requested. With whether it was capped."""
    if requested is None:
        return closed, False
    if closed is None or requested > closed:
        return closed, True
    return requested, False
