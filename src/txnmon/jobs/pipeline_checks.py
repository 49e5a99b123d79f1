"""Gather what the pipeline checks need (src/txnmon/core/pipeline_checks.py) for one quality interval.

Reads MongoDB (newest times, counts, the interval's hours, kpi_revenue_minute) and, when Kafka
settings are given, the raw topic's offsets for the interval and the group's committed offsets.
Every query on `transactions` other than by `_id` is a scan on the local MongoDB-wire server; on
MongoDB they use the indexes on `event_time`, `processed_time` and `source`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.core import pipeline_checks as checks
from txnmon.core.collection_names import REJECTED, TOUCHED_HOURS, TRANSACTIONS
from txnmon.core.rollups import HOUR_FMT
from txnmon.errors import TxnmonError
from txnmon.jobs.rollups import latest_run
from txnmon.settings import Settings

log = logging.getLogger("txnmon.jobs")
BASELINE_DAYS = 7
MAX_ROLLUP_HOURS = 24  # the interval's most recent event-time hours compared with kpi_revenue_minute


def _newest(store: MongoStore, field: str) -> dt.datetime | None:
    found = store.find(TRANSACTIONS, {field: {"$ne": None}}, sort=[(field, -1)], limit=1, projection={field: 1})
    return found[0][field] if found else None


def _between(field: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    return {field: {"$gte": start, "$lt": end}}


def _reconcile(store: MongoStore, settings: Settings, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    topic = settings.topic_raw
    first = kafka.offsets_for_time(settings, topic, int(start.timestamp() * 1000))
    last = kafka.offsets_for_time(settings, topic, int(end.timestamp() * 1000))
    committed = kafka.committed_offsets(settings, settings.consumer_group, topic)
    parts = []
    for p in sorted(first):
        rec = checks.PartitionReconciliation(p, first[p], last.get(p, first[p]), committed.get(p, 0))
        where = {"source.topic": topic, "source.partition": p,
                 "source.offset": {"$gte": rec.first_offset, "$lt": rec.end_offset}}
        stored = [d["source"]["offset"] for d in store.find(TRANSACTIONS, where, projection={"source": 1})]
        rejected = [d["source"]["offset"] for d in store.find(REJECTED, where, projection={"source": 1})]
        missing = checks.missing_offsets(rec, stored, rejected)
        if missing:
            ids: dict[int, str | None] = {}
            for r in kafka.read_range(settings, topic, p, missing[0], missing[-1] + 1):
                try:
                    tid = json.loads(r.value).get("transaction_id")
                except (ValueError, AttributeError, UnicodeDecodeError):
                    tid = None
                ids[r.offset] = None if tid is None else str(tid)
            wanted = sorted({t for o, t in ids.items() if t is not None and o in set(missing)})
            found = {d["_id"] for d in store.find(TRANSACTIONS, {"_id": {"$in": wanted}}, projection={"_id": 1})}
            checks.settle_missing(rec, missing, ids, found)
        parts.append(rec)
    return {"partitions": [r.as_dict() for r in parts], "messages": sum(r.messages for r in parts),
            "unaccounted": sum(len(r.unaccounted) for r in parts), "unprocessed": sum(r.unprocessed for r in parts),
            "duplicates": sum(r.duplicates for r in parts)}


def _rollup_consistency(store: MongoStore, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """kpi_revenue_minute against the stored transactions, hour by hour, for the interval's event-time
    hours that no pending touched_hours entry names (those the next rollup run will recompute)."""
    if latest_run(store) is None:
        return {"checked": 0, "mismatched": [], "skipped": "no rollup run yet"}
    pending = {h for e in store.find(TOUCHED_HOURS, {"pending": True}, projection={"hours": 1})
               for h in e.get("hours") or []}
    times = store.find(TRANSACTIONS, _between("processed_time", start, end), projection={"event_time": 1})
    hours = sorted({t["event_time"].replace(minute=0, second=0, microsecond=0) for t in times
                    if isinstance(t.get("event_time"), dt.datetime)})[-MAX_ROLLUP_HOURS:]
    checked, mismatched, not_yet = 0, [], 0
    for hour in hours:
        label = f"{hour:{HOUR_FMT}}"
        if label in pending:
            not_yet += 1  # stored after the last rollup run: the next run includes it
            continue
        txs = store.find(TRANSACTIONS, _between("event_time", hour, hour + dt.timedelta(hours=1)),
                         projection={"amount": 1, "status": 1, "type": 1})
        kpis = store.find("kpi_revenue_minute", _between("minute", hour, hour + dt.timedelta(hours=1)),
                          projection={"transactions": 1, "revenue": 1})
        checked += 1
        diff = checks.compare_hour(label, kpis, txs)
        if diff is not None:
            mismatched.append(diff)
    return {"checked": checked, "mismatched": mismatched, "not_rolled_up_yet": not_yet}


def pipeline_metrics(store: MongoStore, start: dt.datetime, end: dt.datetime, now: dt.datetime,
                     settings: Settings | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """One row of metrics for the `pipeline` suite, and the details behind it (stored with the summary)."""
    volume = store.count(TRANSACTIONS, _between("processed_time", start, end))
    earlier = [store.count(TRANSACTIONS, _between("processed_time", start - dt.timedelta(days=k),
                                                  end - dt.timedelta(days=k))) for k in range(1, BASELINE_DAYS + 1)]
    baseline, ratio = checks.volume_ratio(volume, earlier)
    rejected = store.count(REJECTED, _between("first_seen", start, end))
    details: dict[str, Any] = {"volume_by_day_before": earlier}
    reconciliation: dict[str, Any] | None = None
    if settings is not None:
        try:
            reconciliation = _reconcile(store, settings, start, end)
        except (TxnmonError, kafka.KafkaError) as exc:
            details["reconciliation_error"] = str(exc)
            log.warning("pipeline checks: reconciliation skipped: %s", exc)
    details["reconciliation"] = reconciliation
    rollup = _rollup_consistency(store, start, end)
    details["rollup_consistency"] = rollup
    row = {
        "newest_event_age_s": checks.age_s(_newest(store, "event_time"), now),
        "newest_processed_age_s": checks.age_s(_newest(store, "processed_time"), now),
        "volume": volume, "volume_baseline": baseline, "volume_ratio": ratio,
        "raw_messages": None if reconciliation is None else reconciliation["messages"],
        "unaccounted_messages": None if reconciliation is None else reconciliation["unaccounted"],
        "unprocessed_messages": None if reconciliation is None else reconciliation["unprocessed"],
        "duplicate_messages": None if reconciliation is None else reconciliation["duplicates"],
        "rollup_hours_checked": rollup["checked"], "rollup_mismatched_hours": len(rollup["mismatched"]),
        "rejected": rejected, "dlq_rate": checks.dlq_rate(rejected, volume),
    }
    return row, details
