"""The risk model's drift check: one UTC day of stored scores against the promoted model's reference.

`check_day(settings, day)` reads the `model.score` of the transactions processed that day by the promoted
version, compares them with the reference registered at training time (src/txnmon/core/drift.py), stores
the result in `quality_reports` as the suite `model_drift` (`_id` `model_drift:<version>:<day>`, so the
dashboard's quality page lists it beside the other suites and a re-run replaces it), and, when the PSI is
above the drifted threshold, queues one `quality_failed` notification whose id is the version and the day:
checked again, the same day queues nothing more.

Only the score is checked: the stream stores `model: {version, score}`, not the feature vector, and
recomputing the features needs each user's history before each transaction (a replay of the state's
30 days), which is a backtest, not a check. The features' references are registered for that later.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from txnmon.adapters.mongo import ModelVersionsRepository, MongoStore
from txnmon.core import drift
from txnmon.core.collection_names import QUALITY_REPORTS, TRANSACTIONS
from txnmon.notifications import routes as routing
from txnmon.notifications.outbox import enqueue_events, load_routes
from txnmon.settings import Settings

log = logging.getLogger("txnmon.jobs")
SUITE = "model_drift"


def report_id(version: str, day: dt.date) -> str:
    return f"{SUITE}:{version}:{day.isoformat()}"


def day_scores(store: MongoStore, version: str, day: dt.date) -> list[float]:
    """The scores `version` gave the transactions processed on `day` (UTC), by processed_time."""
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    query = {"processed_time": {"$gte": start, "$lt": start + dt.timedelta(days=1)}, "model.version": version}
    return [float(d["model"]["score"]) for d in store.find(TRANSACTIONS, query, projection={"model.score": 1, "_id": 0})
            if isinstance((d.get("model") or {}).get("score"), int | float)]


def report_document(version: str, day: dt.date, rows: list[dict[str, Any]], run_at: dt.datetime) -> dict[str, Any]:
    """A quality_reports summary (the fields the dashboard reads) with the drift table in `drift`."""
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    drifted = [r for r in rows if r["status"] == "drifted"]
    return {"_id": report_id(version, day), "suite": SUITE, "model_version": version, "day": day.isoformat(),
            "interval_start": start, "interval_end": start + dt.timedelta(days=1), "run_at": run_at,
            "rows": max((r["n"] for r in rows), default=0), "success": not drifted, "critical_failed": False,
            "failed_expectations": [{"expectation": f"psi_at_most_{drift.DRIFTED_ABOVE}", "column": r["name"],
                                     "severity": "warning", "unexpected_count": None} for r in drifted],
            "expectations": len(rows), "report_path": None, "features_checked": False, "drift": rows}


def check_day(settings: Settings, day: dt.date, *, now: dt.datetime | None = None,
              store: MongoStore | None = None) -> dict[str, Any] | None:
    """Check `day` for the promoted model; store and return the report (None: no model is promoted)."""
    store = store or MongoStore(settings)
    model = ModelVersionsRepository(store).promoted()
    if model is None:
        log.info("model drift %s: no model is promoted, nothing checked", day)
        return None
    version = model["_id"]
    rows = drift.compare(model.get("reference"), {drift.SCORE: day_scores(store, version, day)})
    doc = report_document(version, day, rows, now or dt.datetime.now(dt.UTC))
    store.replace_document(QUALITY_REPORTS, doc)
    drifted = [r for r in rows if r["status"] == "drifted"]
    if drifted:
        detail = "; ".join(f"{r['name']}: PSI {r['psi']:.3f} over {r['n']} transactions" for r in drifted)
        event = routing.pipeline_event(
            routing.QUALITY_FAILED, f"{SUITE}:{version}:{day.isoformat()}",
            title=f"risk model {version} drifted on {day.isoformat()}",
            detail=f"{detail} (above {drift.DRIFTED_ABOVE}; `txnmon models drift --day {day.isoformat()}`)",
            at=doc["run_at"], model_version=version, day=day.isoformat())
        routes = load_routes(settings.notify_routes_file, settings.notify_allowed_host_list)
        ids = enqueue_events(store, routes, [event], now=doc["run_at"])
        log.warning("model %s drifted on %s: %s; %d notification(s)", version, day, detail, len(ids))
    return doc


def drift_task(settings: Settings, interval_end: dt.datetime) -> dict[str, Any]:
    """The data_quality DAG's drift task: the last complete UTC day before `interval_end`, checked once
    per promoted version (the hourly runs after the first find its report and skip)."""
    day = (interval_end.astimezone(dt.UTC) - dt.timedelta(days=1)).date()
    store = MongoStore(settings)
    version = ModelVersionsRepository(store).promoted_version()
    if version is None:
        return {"day": day.isoformat(), "status": "no model promoted"}
    if store.find_one(QUALITY_REPORTS, {"_id": report_id(version, day)}) is not None:
        return {"day": day.isoformat(), "model_version": version, "status": "checked already"}
    doc = check_day(settings, day, store=store)
    return {"day": day.isoformat(), "model_version": version,
            "drift": [{k: r[k] for k in ("name", "n", "psi", "status")} for r in (doc or {}).get("drift", [])]}
