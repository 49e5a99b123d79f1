"""The KPI rollup job: run the pipelines of include/core/rollups.py over the touched hours.

A run recomputes every event-time hour touched by transactions (or alerts) processed in its
interval, whole, so late data and replays of old files are counted once and correctly;
`full_rebuild` recomputes every hour there is.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from include.config import get_settings
from include.connectors.mongo import MongoStore
from include.core.collection_names import ALERTS, RULE_QUALITY, TRANSACTIONS
from include.core.rollups import HOUR_FMT, ROLLUP_NAMES, ROLLUPS, Rollup, hour_start, rollup_pipeline

__all__ = ["ROLLUPS", "ROLLUP_NAMES", "RollupRun", "rollup_interval", "run_rollups", "touched_hours"]
from include.jobs.triage import refresh_rule_quality

log = logging.getLogger("txnmon.jobs")


def touched_hours(store: MongoStore, start: dt.datetime, end: dt.datetime) -> list[str]:
    """Event-time hours of transactions processed, or alerts raised, in [start, end)."""
    hours: set[str] = set()
    for collection, field in ((TRANSACTIONS, "processed_time"), (ALERTS, "created_at")):
        rows = store.aggregate(collection, [
            {"$match": {field: {"$gte": start, "$lt": end}}},
            {"$group": {"_id": {"$dateToString": {"date": "$event_time", "format": HOUR_FMT}}}},
        ])
        hours.update(r["_id"] for r in rows if r["_id"])
    return sorted(hours)


@dataclass(frozen=True)
class RollupRun:
    hours: list[str]
    documents: dict[str, int]  # rollup collection -> documents in the recomputed buckets
    full_rebuild: bool


def run_rollups(store: MongoStore, start: dt.datetime | None = None, end: dt.datetime | None = None,
                *, full_rebuild: bool = False) -> RollupRun:
    """Recompute the buckets touched in [start, end), or everything with `full_rebuild`."""
    if full_rebuild:
        hours: list[str] | None = None
    else:
        if start is None or end is None:
            raise ValueError("start and end are required unless full_rebuild is set")
        hours = touched_hours(store, start, end)
        if not hours:
            return RollupRun([], {r.collection: 0 for r in ROLLUPS}, False)
    counts = {}
    for rollup in ROLLUPS:
        store.aggregate(rollup.source, rollup_pipeline(rollup, hours))
        counts[rollup.collection] = _count_buckets(store, rollup, hours)
    # alert dispositions change without new data: per-rule precision is recomputed whole (alerts are few)
    refresh_rule_quality(store)
    counts[RULE_QUALITY] = store.count(RULE_QUALITY)
    return RollupRun(hours or [], counts, full_rebuild)


def _count_buckets(store: MongoStore, rollup: Rollup, hours: Sequence[str] | None) -> int:
    if not hours:
        return store.count(rollup.collection)
    field = rollup.grain
    first, last = hour_start(min(hours)), hour_start(max(hours)) + dt.timedelta(hours=1)
    return store.count(rollup.collection, {field: {"$gte": first, "$lt": last}})


def rollup_interval(start: dt.datetime, end: dt.datetime, full_rebuild: bool = False) -> dict[str, Any]:
    """The kpi_rollups DAG's task: one interval (or everything), summary out."""
    run = run_rollups(MongoStore(get_settings()), start, end, full_rebuild=full_rebuild)
    log.info("rollups %s: hours %s, documents %s", "full rebuild" if full_rebuild else f"{start} .. {end}",
             run.hours if len(run.hours) < 10 else f"{len(run.hours)} hours", run.documents)
    return {"hours": len(run.hours), "documents": run.documents, "full_rebuild": run.full_rebuild}
