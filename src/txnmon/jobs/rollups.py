"""The KPI rollup job: recompute the hours of every pending `touched_hours` entry, then mark them done.

The processor writes one `touched_hours` entry per stored batch, after the batch's transactions
and alerts are acknowledged (txnmon.pipeline.sinks), so whoever sees an entry sees its data.
Those pending entries are the durable high-water mark: no clock and no Airflow data interval
decides what a run covers. A run

1. takes the `kpi_rollups` lease (one run at a time: two runs writing the same hour could leave
   the older view of it on top),
2. reads the pending entries: `as_of` is that moment, every batch stored before it is included,
3. reads the transactions of the union of their hours ONCE (a full rebuild: all of them) into the
   cube of src/txnmon/core/rollups.py, and the live alerts of those hours once,
4. writes each kpi_* collection's new or changed documents of those hours and deletes the buckets
   that are gone; refreshes kpi_rule_quality whole (dispositions change without new data),
5. marks exactly the entries read in 2 done (`pending: False`, `rolled_up_at`, `run_id`),
6. records the run in `kpi_runs` (what it read, wrote and consumed, `success: True`).

A failure before 5 leaves the entries pending: the retry, or the next run, recomputes the same
hours from the same data and writes the same documents. Manual triggers, missed schedules and
batches that were retried through an outage (their entry is written only once they are stored)
are all caught up by the next run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from txnmon.adapters.mongo import LeasesRepository, MongoStore
from txnmon.core import customers
from txnmon.core.collection_names import (
    ALERTS,
    CUSTOMER_FIRSTS,
    CUSTOMERS_HOUR,
    KPI_RUNS,
    RULE_QUALITY,
    TOUCHED_HOURS,
    TRANSACTIONS,
    WATERMARKS,
)
from txnmon.core.rollup_cube import AlertCube, TxCube
from txnmon.core.rollups import (
    ALERT_FIELDS,
    GRAIN_FIELD,
    HOUR_FMT,
    ROLLUP_NAMES,
    ROLLUPS,
    TX_FIELDS,
    hour_start,
    plan_writes,
    projection,
    source_query,
    time_query,
    valid_hours,
)
from txnmon.core.watermark import DEFAULT_K as WATERMARK_K
from txnmon.errors import RetryableError, TxnmonError
from txnmon.jobs.triage import refresh_rule_quality
from txnmon.settings import Settings

__all__ = ["KPI_COLLECTIONS", "ROLLUPS", "ROLLUP_NAMES", "RollupBusy", "RollupRun", "freshness", "latest_run",
           "rollup_pending", "run_rollups"]

log = logging.getLogger("txnmon.jobs")

LEASE = "kpi_rollups"
LEASE_FOR = dt.timedelta(minutes=10)  # a run renews it every minute; a crashed run blocks others this long at most
RENEW_EVERY_S = 60.0
MARK_CHUNK = 5_000  # entry ids per update
KEPT_HOURS = 500  # hours listed in a kpi_runs document (the count is always there)
KPI_COLLECTIONS = (*ROLLUP_NAMES, CUSTOMERS_HOUR, RULE_QUALITY)

Clock = Callable[[], dt.datetime]
Progress = Callable[[str, int, int | None], None]  # (stage, done so far, total or None)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RollupBusy(RetryableError):
    """Another rollup run holds the lease: this one would race it. Retry after it finishes."""


@dataclass(frozen=True)
class RollupRun:
    run_id: str
    hours: list[str]  # the event-time hours recomputed (every hour with data for a full rebuild)
    documents: dict[str, int]  # kpi collection -> its documents in the recomputed buckets
    full_rebuild: bool
    entries: int = 0  # touched_hours entries consumed
    as_of: dt.datetime | None = None  # every batch stored before this is included
    passes: dict[str, int] = field(default_factory=dict)  # collection -> reads of it this run
    written: dict[str, dict[str, int]] = field(default_factory=dict)


def run_rollups(store: MongoStore, *, full_rebuild: bool = False, trigger: str = "manual",
                clock: Clock = _utcnow, progress: Progress | None = None) -> RollupRun:
    """Recompute the hours of every pending entry (or everything), then consume those entries.

    `progress(stage, documents_read, total)` while reading (total: the collection's estimated size on a
    full rebuild, None otherwise), every 10,000 documents; the CLI shows it."""
    owner = f"{trigger}-{uuid.uuid4().hex[:12]}"
    started = clock()
    if not LeasesRepository(store).acquire(LEASE, owner, started, started + LEASE_FOR):
        raise RollupBusy("another KPI rollup run is in progress; this one would race it (retry later)",
                         retry_after=30.0)
    run_id = f"{started:%Y-%m-%dT%H:%M:%S.%fZ}-{owner}"
    doc: dict[str, Any] = {"_id": run_id, "started_at": started, "finished_at": None, "trigger": trigger,
                           "full_rebuild": full_rebuild, "success": False, "state": "running"}
    try:
        store.insert_missing(KPI_RUNS, [doc])
        with _gc_paused():
            run = _run(store, run_id, owner, full_rebuild, clock, doc, progress)
    except BaseException as exc:
        _record_failure(store, doc, exc, clock)
        raise
    finally:
        _release(store, owner)
    return run


def _run(store: MongoStore, run_id: str, owner: str, full_rebuild: bool, clock: Clock,
         doc: dict[str, Any], progress: Progress | None = None) -> RollupRun:
    previous = latest_run(store)
    # read before the entries: the processor saves a partition's watermark after the batch's entry,
    # so every batch behind it is consumed by this run or an earlier one (business signals wait for it)
    event_watermark = processor_watermark(store)
    as_of = clock()
    entries = store.find(TOUCHED_HOURS, {"pending": True}, projection={"hours": 1, "acked_at": 1})
    hours, malformed = valid_hours(h for e in entries for h in e.get("hours") or [])
    if malformed:
        log.warning("rollups: ignoring malformed hours in touched_hours: %s", malformed[:10])
    renew = _renewer(store, owner, clock)
    steps: dict[str, float] = {}
    tick = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal tick
        now = time.perf_counter()
        steps[step] = round(steps.get(step, 0.0) + now - tick, 3)
        tick = now

    lap("read_entries")
    documents: dict[str, int] = {}
    written: dict[str, dict[str, int]] = {}
    passes = {TRANSACTIONS: 0, ALERTS: 0}
    read = {TRANSACTIONS: 0, ALERTS: 0}
    scope: list[str] | None = None if full_rebuild else hours
    if full_rebuild or hours:
        tx_cube, alert_cube = TxCube(), AlertCube()
        for source, cube, fields in ((TRANSACTIONS, tx_cube, TX_FIELDS), (ALERTS, alert_cube, ALERT_FIELDS)):
            total = store.estimated_count(source) if full_rebuild and progress is not None else None
            stage = f"reading {source}"
            read[source] = store.for_each(source, source_query(source, scope), projection(fields),
                                          _visiting(cube.add, renew, stage, total, progress))
            if progress is not None:
                progress(stage, read[source], read[source])
            passes[source] += 1
            lap(f"read_{source}")
        if full_rebuild:
            hours = sorted(tx_cube.hours() | alert_cube.hours())
        for rollup in ROLLUPS:
            rows = (tx_cube if rollup.source == TRANSACTIONS else alert_cube).rows(rollup)
            lap("derive")
            stored = store.find(rollup.collection, time_query(GRAIN_FIELD[rollup.grain], scope))
            writes, deletes = plan_writes(rows, stored)
            lap("read_kpi")
            renew()
            written[rollup.collection] = store.write_documents(rollup.collection, writes, deletes)
            documents[rollup.collection] = len(rows)
            lap("write_kpi")
        documents[CUSTOMERS_HOUR], written[CUSTOMERS_HOUR], written[CUSTOMER_FIRSTS] = _roll_customers(
            store, tx_cube, scope, hours, run_id, clock)
        lap("customers")
    else:
        documents = {r.collection: 0 for r in (*ROLLUPS,)}
        documents[CUSTOMERS_HOUR] = 0
    # alert dispositions change without new data: per-rule precision is recomputed whole (alerts are few)
    refresh_rule_quality(store)
    passes[ALERTS] += 1
    documents[RULE_QUALITY] = store.count(RULE_QUALITY)
    lap("rule_quality")
    finished = clock()
    ids = [e["_id"] for e in entries]
    for first in range(0, len(ids), MARK_CHUNK):
        store.set_fields(TOUCHED_HOURS, ids[first:first + MARK_CHUNK],
                         {"pending": False, "rolled_up_at": finished, "run_id": run_id})
    acked = [e["acked_at"] for e in entries if isinstance(e.get("acked_at"), dt.datetime)]
    marks = [m for m in (max(acked, default=None), (previous or {}).get("mark")) if m is not None]
    doc.update(
        finished_at=finished, success=True, state="done", as_of=as_of, mark=max(marks, default=None),
        event_watermark=event_watermark,
        hours_recomputed=len(hours), hours=hours[:KEPT_HOURS], hours_truncated=len(hours) > KEPT_HOURS,
        entries_consumed=len(ids), transactions_read=read[TRANSACTIONS], alerts_read=read[ALERTS],
        passes=passes, documents=documents, written=written, collections=list(KPI_COLLECTIONS),
        seconds=round((finished - doc["started_at"]).total_seconds(), 3), seconds_by_step=steps)
    store.replace_document(KPI_RUNS, doc)
    return RollupRun(run_id, hours, documents, full_rebuild, len(ids), as_of, passes, written)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection during a run: its cubes hold hundreds of thousands of small
    containers that live for the whole run, and the collector's repeated passes over them cost more
    than the fold itself (bench/rollups.py). A run makes no reference cycles; memory is freed as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _roll_customers(store: MongoStore, cube: TxCube, scope: list[str] | None, hours: list[str], run_id: str,
                    clock: Clock) -> tuple[int, dict[str, int], dict[str, int]]:
    """kpi_customers_hour of the recomputed hours, and the first purchases in customer_firsts, from the
    cube of this run's one pass (src/txnmon/core/customers.py). Returns (documents, written, written firsts)."""
    buyers = cube.buyers_by_hour()
    seen = customers.first_hours(buyers)
    full_rebuild = scope is None
    shards = None if full_rebuild else sorted({customers.shard_of(u) for u in seen})
    stored_docs = store.find(CUSTOMER_FIRSTS, {} if full_rebuild else {"_id": {"$in": shards}})
    stored = customers.firsts_from_documents(stored_docs)
    merged = customers.merged_firsts(stored, seen, full_rebuild)
    recomputed = {hour_start(h) for h in hours}
    moved = customers.moved_firsts(stored, merged, recomputed)
    if moved:  # customers counted new in hours this run does not recompute: the next run recomputes them
        store.insert_missing(TOUCHED_HOURS, [{
            "_id": f"customers|{run_id}", "hours": sorted(h.strftime(HOUR_FMT) for h in moved), "transactions": 0,
            "acked_at": clock(), "pending": True, "why": "a customer's first purchase moved earlier"}])
    writes, deletes = plan_writes(customers.firsts_documents(merged, shards), stored_docs)
    firsts_written = store.write_documents(CUSTOMER_FIRSTS, writes, deletes)
    rows = customers.hour_documents(buyers, merged, lambda h: h.strftime(HOUR_FMT))
    writes, deletes = plan_writes(rows, store.find(CUSTOMERS_HOUR, time_query("hour", scope)))
    return len(rows), store.write_documents(CUSTOMERS_HOUR, writes, deletes), firsts_written


def _visiting(add: Callable[[dict[str, Any]], None], renew: Callable[[], None], stage: str = "reading",
              total: int | None = None, progress: Progress | None = None) -> Callable[[dict[str, Any]], None]:
    """`add` for every document, the lease renewed now and then during a long read, progress reported."""
    count = 0

    def visit(d: dict[str, Any]) -> None:
        nonlocal count
        add(d)
        count += 1
        if count % 10_000 == 0:
            if progress is not None:
                progress(stage, count, total if total is None or total >= count else None)
            if count % 50_000 == 0:
                renew()

    return visit


def _renewer(store: MongoStore, owner: str, clock: Clock) -> Callable[[], None]:
    last = time.monotonic()

    def renew() -> None:
        nonlocal last
        if time.monotonic() - last < RENEW_EVERY_S:
            return
        now = clock()
        if not LeasesRepository(store).acquire(LEASE, owner, now, now + LEASE_FOR):
            raise RollupBusy("the KPI rollup lease expired and another run took it; this run stops unfinished")
        last = time.monotonic()

    return renew


def _record_failure(store: MongoStore, doc: dict[str, Any], exc: BaseException, clock: Clock) -> None:
    """Best effort: the run's document says it failed and why (its entries stay pending either way)."""
    try:
        store.replace_document(KPI_RUNS, {**doc, "finished_at": clock(), "success": False, "state": "failed",
                                          "error": f"{type(exc).__name__}: {exc}"[:500]})
    except TxnmonError as why:
        log.warning("rollups: could not record the failed run %s: %s", doc["_id"], why)


def _release(store: MongoStore, owner: str) -> None:
    try:
        LeasesRepository(store).release(LEASE, owner)
    except TxnmonError as why:  # it expires by itself
        log.warning("rollups: could not release the lease (it expires within %s): %s", LEASE_FOR, why)


# --- freshness ------------------------------------------------------------------------------------


def processor_watermark(store: MongoStore) -> dt.datetime | None:
    """The event-time watermark of the processor's slowest input partition (of those with one): all
    data of every partition up to it is stored. None before the processor has seen enough events."""
    docs = store.find(WATERMARKS, {"topic": store.settings.topic_by_user}, projection={"newest": 1})
    marks = [min(d["newest"]) for d in docs if len(d.get("newest") or []) >= WATERMARK_K]
    return min(marks) if marks else None


def latest_run(store: MongoStore, collection: str | None = None) -> dict[str, Any] | None:
    """The newest successful run (that refreshed `collection`, if given)."""
    query: dict[str, Any] = {"success": True}
    if collection is not None:
        query["collections"] = collection
    found = store.find(KPI_RUNS, query, sort=[("finished_at", -1)], limit=1,
                       projection={"hours": 0, "written": 0})
    return found[0] if found else None


def freshness(store: MongoStore) -> dict[str, Any]:
    """How fresh the kpi_* collections are: per collection, the last successful run that refreshed it.

    `as_of`: every batch stored before it is in the collection; `mark`: the acknowledgement time of
    the newest batch included; `pending_batches`: stored batches no run has consumed yet.
    """
    last = latest_run(store)
    collections: dict[str, Any] = {}
    for name in KPI_COLLECTIONS:
        run = last if last is not None and name in last.get("collections", []) else (
            latest_run(store, name) if last is not None else None)
        collections[name] = None if run is None else {
            "last_success": run.get("finished_at"), "as_of": run.get("as_of"), "mark": run.get("mark"),
            "run_id": run["_id"]}
    return {
        "last_run": None if last is None else {
            k: last.get(k) for k in ("_id", "as_of", "finished_at", "mark", "full_rebuild", "hours_recomputed",
                                     "entries_consumed", "passes", "seconds")},
        "pending_batches": store.count(TOUCHED_HOURS, {"pending": True}),
        "collections": collections,
    }


# --- entry points -------------------------------------------------------------------------------


def rollup_pending(settings: Settings, full_rebuild: bool = False, trigger: str = "airflow") -> dict[str, Any]:
    """The kpi_rollups DAG's task: everything stored so far (or everything there is), summary out."""
    run = run_rollups(MongoStore(settings), full_rebuild=full_rebuild, trigger=trigger)
    log.info("rollups %s: %d entries, hours %s, documents %s, passes %s", "full rebuild" if full_rebuild else "run",
             run.entries, run.hours if len(run.hours) < 10 else f"{len(run.hours)} hours", run.documents, run.passes)
    return summary(run)


def summary(run: RollupRun) -> dict[str, Any]:
    return {"run_id": run.run_id, "hours": len(run.hours), "entries": run.entries, "documents": run.documents,
            "passes": run.passes, "full_rebuild": run.full_rebuild,
            "as_of": run.as_of.isoformat() if run.as_of else None}

