"""The MongoDB sinks of a processed batch, each with one `write(batch)`.

Every write is idempotent (inserts by natural id, upserts by deterministic id), so a retry or a
redelivered batch changes nothing that is already stored. A sink that learns something the batch
must know (a transaction refused or in conflict) returns it as a `SinkOutcome`, which the runner
applies; no sink edits the batch. The order the sinks run in is declared in `pipeline.orders`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from txnmon.adapters.mongo import MongoStore, WatermarksRepository
from txnmon.core.batch import BatchResult, SinkOutcome, conflict
from txnmon.core.collection_names import (
    ALERTS,
    NOTIFICATIONS,
    REJECTED,
    SHADOW_ALERTS,
    SUPPRESSED_ALERTS,
    TOUCHED_HOURS,
    TRANSACTIONS,
)
from txnmon.core.records import STORE_FAILED, Rejection
from txnmon.core.resend import VERDICT_FIELDS, StoredCopies, sort_stored
from txnmon.core.rollups import HOUR_FMT
from txnmon.core.rules.engine import owner_of
from txnmon.core.watermark import stored as stored_marks
from txnmon.errors import StoreRefused
from txnmon.notifications import routes as routing
from txnmon.pipeline.write_ahead import DUPLICATE, REFUSED, WriteAhead, insert_written

log = logging.getLogger("txnmon.stream")


class TransactionsSink:
    """The batch's transactions, inserted once by transaction id.

    A transaction MongoDB refuses for good (not a race or an outage) goes to the DLQ as
    `store_failed`; one whose id is already stored with other content goes as
    `duplicate_id_conflict`. One stored before with this content is written again (idempotent: it is
    this batch redone after a crash) if it came from the same message and reached the stored
    verdict, and dropped with everything it raised otherwise (a re-send the detector's history no
    longer held, or a new group's second look at the first pass's by-user record: `core.resend`).
    The copies the detector did not judge (`batch.resent`) are only checked for content. The sink
    reports all that in its outcome, and the batch applies it, so this sink runs first.
    """

    name = "mongodb"

    def __init__(self, store: MongoStore, ahead: WriteAhead | None = None) -> None:
        self.store = store
        self.ahead = ahead  # the processor's inserts made while the batch was judged (pipeline.write_ahead)

    def write(self, batch: BatchResult) -> SinkOutcome:
        docs = batch.transactions
        written = dict(self.ahead.settle()) if self.ahead is not None else {}
        # what was not written ahead, written here; both read alike, in the batch's order as one write gives them
        written.update(insert_written(self.store, [d for d in docs if d["_id"] not in written]))
        duplicates = [d["_id"] for d in docs if written[d["_id"]][0] == DUPLICATE]
        refused = {d["_id"]: Rejection(STORE_FAILED, written[d["_id"]][1]) for d in docs
                   if written[d["_id"]][0] == REFUSED}
        copies = self._stored_copies(docs, duplicates, {tid: r.fingerprint for tid, r in batch.resent.items()})
        conflicts = {tid: conflict(tid) for tid in copies.conflicts}
        judged_conflicts = sum(1 for tid in copies.conflicts if tid not in batch.resent)
        return SinkOutcome(withdraw={**refused, **conflicts}, stage="store",
                           existing=len(duplicates) - judged_conflicts, resent=frozenset(copies.resent))

    def _stored_copies(self, docs: Sequence[dict[str, Any]], duplicate_ids: Sequence[str],
                       unjudged: dict[str, str]) -> StoredCopies:
        """What the stored copies say: one read by `_id`, only when there are any."""
        ids = list(dict.fromkeys([*duplicate_ids, *unjudged]))
        if not ids:
            return StoredCopies()
        duplicates = set(duplicate_ids)
        ours = {d["_id"]: d for d in docs if d["_id"] in duplicates}
        stored = self.store.find(TRANSACTIONS, {"_id": {"$in": ids}},
                                 projection={"content_hash": 1, "source": 1, "judged_at": 1, "model": 1,
                                             **dict.fromkeys(VERDICT_FIELDS, 1)})
        return sort_stored(ours, stored, unjudged)


def insert_or_refuse(store: MongoStore, collection: str, docs: Sequence[dict[str, Any]],
                     transaction_of: Callable[[dict[str, Any]], str | None],
                     refused_ids: set[str] | None = None) -> dict[str, Rejection]:
    """Insert `docs`; for each one MongoDB refuses for good (too large, not storable), the id of its
    transaction and why, so that transaction goes to the DLQ (SinkOutcome.dead) and the batch goes on.
    The other documents are inserted; a refusal that names no document still raises. The refused
    documents' ids are added to `refused_ids` when given."""
    try:
        store.insert_missing(collection, docs)
        return {}
    except StoreRefused as exc:
        if not exc.refused:
            raise
        dead: dict[str, Rejection] = {}
        for index, why in sorted(exc.refused.items()):
            doc = docs[index]
            tid = transaction_of(doc)
            if refused_ids is not None:
                refused_ids.add(str(doc.get("_id")))
            log.error("MongoDB refused %s document %s (transaction %s): %s", collection, doc.get("_id"), tid, why)
            if tid is not None:
                dead.setdefault(tid, Rejection(STORE_FAILED, f"{collection} document {doc.get('_id')!s:.200} "
                                                             f"refused: {why}"))
        return dead


class RejectedSink:
    """Every DLQ record as a document in `rejected`, keyed by its source position.

    A record MongoDB refuses as it is (its original too large) is stored with the original cut to
    `KEPT_ORIGINAL` bytes; one refused even so is only in the DLQ topic (logged), never a stop."""

    name = "mongodb"
    stores_rejected = True  # the runner runs it again for DLQ records found by later sinks
    KEPT_ORIGINAL = 64 * 1024

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    def write(self, batch: BatchResult) -> None:
        if not batch.rejected:
            return
        try:
            self.store.insert_missing(REJECTED, batch.rejected)
        except StoreRefused as exc:
            if not exc.refused:
                raise
            cut = [self._cut(batch.rejected[i], why) for i, why in sorted(exc.refused.items())]
            try:
                self.store.insert_missing(REJECTED, cut)
            except StoreRefused as again:
                for i, why in again.refused.items():
                    log.error("MongoDB refused DLQ record %s even cut down (%s); it is in the DLQ topic only",
                              cut[i]["_id"], why)
                if not again.refused:
                    raise

    def _cut(self, doc: dict[str, Any], why: str) -> dict[str, Any]:
        original = doc.get("original") or b""
        log.error("MongoDB refused DLQ record %s (%s); storing it with the original cut to %d bytes",
                  doc["_id"], why, self.KEPT_ORIGINAL)
        return {**doc, "original": bytes(original[:self.KEPT_ORIGINAL]), "original_bytes": len(original),
                "detail": str(doc.get("detail", ""))[:2000], "key": (doc.get("key") or b"")[:1024],
                "store_refused": why[:500]}


class AlertsSink:
    """Raised, suppressed and shadow alerts, each in its own collection, keyed by alert id."""

    name = "mongodb"

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    def write(self, batch: BatchResult) -> SinkOutcome | None:
        dead: dict[str, Rejection] = {}
        refused: set[str] = set()
        for collection, docs in ((ALERTS, batch.alerts), (SUPPRESSED_ALERTS, batch.suppressed),
                                 (SHADOW_ALERTS, batch.shadow)):
            if docs:
                found = insert_or_refuse(self.store, collection, docs, owner_of,
                                         refused_ids=refused)
                dead.update({k: v for k, v in found.items() if k not in dead})
        return SinkOutcome(stage="alerts", dead=dead, refused_alerts=frozenset(refused)) if dead else None


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
        if batch.watermarks:  # with the marks before the batch: a redo after a crash starts from those
            marks = stored_marks(batch.watermarks, batch.watermarks_before, batch.next_offsets)
            WatermarksRepository(self.store).save(self.topic, marks)


class RoutesSource(Protocol):
    """The notification routes in force (jobs.routing.RoutesFeed reloads them between batches)."""

    @property
    def routes(self) -> routing.Routes: ...


class NotificationsSink:
    """A judged batch's raised alerts into the outbox, as the routes say (suppressed and shadow never).

    `only_new` (a window replay): only alerts not stored yet are routed, so a replay does not page
    anyone for alerts raised before a route existed. That sink must run BEFORE the alerts sink: an alert
    stored by a replay that then died before routing it would look old to the next run and never be
    routed; the other way round, the next run routes it again and the outbox's key keeps one entry."""

    name = "mongodb"

    def __init__(self, store: MongoStore, feed: RoutesSource, *, only_new: bool = False) -> None:
        self.store = store
        self.feed = feed
        self.only_new = only_new

    def write(self, batch: BatchResult) -> SinkOutcome | None:
        alerts = batch.alerts
        if alerts and self.only_new:
            ids = {"_id": {"$in": [a["_id"] for a in alerts]}}
            # raised before, or suppressed before (lists or suppress_for then): not news to anyone now
            stored = {d["_id"] for c in (ALERTS, SUPPRESSED_ALERTS)
                      for d in self.store.find(c, ids, projection={"_id": 1})}
            alerts = [a for a in alerts if a["_id"] not in stored]
        if not alerts:
            return None
        entries = routing.outbox_entries((routing.event_of_alert(a) for a in alerts), self.feed.routes,
                                        dt.datetime.now(dt.UTC))
        if not entries:
            return None
        transaction_of = {str(a["alert_id"]): owner_of(a) for a in alerts}
        dead = insert_or_refuse(self.store, NOTIFICATIONS, entries, lambda e: transaction_of.get(e["event_id"]))
        return SinkOutcome(stage="notifications", dead=dead) if dead else None
