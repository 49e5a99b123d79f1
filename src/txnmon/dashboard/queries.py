"""What the dashboard shows, as plain functions over the kpi_* rollups and the alerts collection.

The dashboard never scans raw transactions: every number here comes from a rollup or an alert.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from txnmon.core import geo
from txnmon.core.collection_names import (
    ALERTS,
    KPI_RUNS,
    OPS_ALERTS,
    QUALITY_REPORTS,
    REJECTED,
    SHADOW_ALERTS,
    SIGNAL_STATE,
    TRENDS,
)

RANGES = {"All data": None, "Last hour of data": dt.timedelta(hours=1), "Last 6 hours of data": dt.timedelta(hours=6),
          "Last 24 hours of data": dt.timedelta(hours=24), "Last 7 days of data": dt.timedelta(days=7)}


@dataclass(frozen=True)
class Window:
    start: dt.datetime
    end: dt.datetime  # exclusive

    @property
    def hour_start(self) -> dt.datetime:
        return self.start.replace(minute=0, second=0, microsecond=0)


def data_window(db: Any, span: dt.timedelta | None) -> Window | None:
    """The chosen range, anchored at the newest minute with data (replays carry old dates)."""
    newest = db.find("kpi_revenue_minute", sort=[("minute", -1)], limit=1, projection={"minute": 1})
    if not newest:
        return None
    end = newest[0]["minute"] + dt.timedelta(minutes=1)
    if span is None:
        oldest = db.find("kpi_revenue_minute", sort=[("minute", 1)], limit=1, projection={"minute": 1})
        return Window(oldest[0]["minute"], end)
    return Window(end - span, end)


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)


def revenue_trend(db: Any, w: Window) -> pd.DataFrame:
    rows = db.find("kpi_revenue_minute", {"minute": {"$gte": w.start, "$lt": w.end}}, sort=[("minute", 1)],
                         projection={"_id": 0, "minute": 1, "revenue": 1, "transactions": 1,
                                     "alerted_transactions": 1})
    return _frame(rows, ["minute", "revenue", "transactions", "alerted_transactions"])


def headline(db: Any, w: Window) -> dict[str, float]:
    trend = revenue_trend(db, w)
    transactions = int(trend["transactions"].sum()) if len(trend) else 0
    alerted = int(trend["alerted_transactions"].sum()) if len(trend) else 0
    alerts = db.aggregate("kpi_alerts_hour", [
        {"$match": {"hour": {"$gte": w.hour_start, "$lt": w.end}}},
        {"$group": {"_id": None, "n": {"$sum": "$alerts"}}}])
    return {
        "revenue": float(trend["revenue"].sum()) if len(trend) else 0.0,
        "transactions": transactions,
        "alert_rate": alerted / transactions if transactions else 0.0,
        "alerts": int(alerts[0]["n"]) if alerts else 0,
    }


def _by(db: Any, collection: str, keys: list[str], w: Window) -> pd.DataFrame:
    rows = db.aggregate(collection, [
        {"$match": {"hour": {"$gte": w.hour_start, "$lt": w.end}}},
        {"$group": {"_id": {k: f"${k}" for k in keys}, "revenue": {"$sum": "$revenue"},
                    "transactions": {"$sum": "$transactions"}}},
    ])
    flat = [{**r["_id"], "revenue": r["revenue"], "transactions": r["transactions"]} for r in rows]
    return _frame(flat, [*keys, "revenue", "transactions"]).sort_values("revenue", ascending=False, ignore_index=True)


def by_category(db: Any, w: Window) -> pd.DataFrame:
    return _by(db, "kpi_product_hour", ["category"], w)


def by_product(db: Any, w: Window) -> pd.DataFrame:
    return _by(db, "kpi_product_hour", ["product", "category"], w)


def by_payment(db: Any, w: Window) -> pd.DataFrame:
    return _by(db, "kpi_payment_hour", ["payment_method"], w)


def by_city(db: Any, w: Window) -> pd.DataFrame:
    """Revenue per city with coordinates from the bundled table; unknown cities get no point."""
    frame = _by(db, "kpi_location_hour", ["location"], w)
    coords = [geo.lookup(str(c)) for c in frame["location"]]
    frame["lat"] = [c.lat if c else None for c in coords]
    frame["lon"] = [c.lon if c else None for c in coords]
    return frame


def alerts_by_rule(db: Any, w: Window) -> pd.DataFrame:
    return _by_alerts(db, w)


def _by_alerts(db: Any, w: Window) -> pd.DataFrame:
    rows = db.aggregate("kpi_alerts_hour", [
        {"$match": {"hour": {"$gte": w.hour_start, "$lt": w.end}}},
        {"$group": {"_id": "$rule", "alerts": {"$sum": "$alerts"}}}])
    return _frame([{"rule": r["_id"], "alerts": r["alerts"]} for r in rows], ["rule", "alerts"]).sort_values(
        "alerts", ascending=False, ignore_index=True)


FEED_COLUMNS = ["event_time", "severity", "rule", "reason", "transaction_id", "user_id", "amount", "location",
                "alert_id"]


def alerts_feed(db: Any, w: Window | None, rules: list[str] | None = None, limit: int = 200) -> pd.DataFrame:
    """Newest alerts first (by event time), live ones only, optionally for some rules."""
    query: dict[str, Any] = {"mode": {"$ne": "shadow"}}
    if w is not None:
        query["event_time"] = {"$gte": w.start, "$lt": w.end}
    if rules:
        query["rule"] = {"$in": list(rules)}
    rows = db.find(ALERTS, query, sort=[("event_time", -1), ("_id", 1)], limit=limit,
                         projection={c: 1 for c in FEED_COLUMNS})
    return _frame(rows, FEED_COLUMNS)


def known_rules(db: Any) -> list[str]:
    return sorted({r["_id"] for r in db.aggregate(ALERTS, [{"$group": {"_id": "$rule"}}])})


def rejected_by_reason(db: Any) -> pd.DataFrame:
    """Rejected events (the DLQ, as stored in `rejected`) per reason, with how many were re-driven."""
    rows = db.aggregate(REJECTED, [
        {"$group": {"_id": "$reason", "rejected": {"$sum": 1},
                    "redriven": {"$sum": {"$cond": [{"$gt": ["$redriven_at", None]}, 1, 0]}}}}])
    frame = _frame([{"reason": r["_id"], "rejected": r["rejected"], "redriven": r["redriven"]} for r in rows],
                   ["reason", "rejected", "redriven"])
    return frame.sort_values("rejected", ascending=False, ignore_index=True)


def shadow_vs_live(db: Any, w: Window) -> pd.DataFrame:
    """Per rule: hits of shadow-mode rules next to raised (live) alerts in the range."""
    match = {"$match": {"event_time": {"$gte": w.start, "$lt": w.end}}}
    group = {"$group": {"_id": "$rule", "n": {"$sum": 1}}}
    shadow = {r["_id"]: r["n"] for r in db.aggregate(SHADOW_ALERTS, [match, group])}
    if not shadow:
        return _frame([], ["rule", "shadow_hits", "live_alerts"])
    live = {r["_id"]: r["n"] for r in db.aggregate(ALERTS, [match, group])}
    return _frame([{"rule": rule, "shadow_hits": n, "live_alerts": live.get(rule, 0)}
                   for rule, n in sorted(shadow.items())], ["rule", "shadow_hits", "live_alerts"])


def kpis_as_of(db: Any) -> dt.datetime | None:
    """When the newest successful rollup run started: the kpi_* numbers include every batch stored before it."""
    runs = db.find(KPI_RUNS, {"success": True}, sort=[("finished_at", -1)], limit=1, projection={"as_of": 1})
    return runs[0].get("as_of") if runs else None


def quality_runs(db: Any, per_suite: int = 5) -> dict[str, list[dict[str, Any]]]:
    """The latest runs of each quality suite, newest first (quality_reports: one summary per suite and run)."""
    rows = db.find(QUALITY_REPORTS, sort=[("run_at", -1)], limit=50 * per_suite,
                   projection={"suite": 1, "run_at": 1, "interval_start": 1, "interval_end": 1, "rows": 1, "success": 1,
                               "critical_failed": 1, "failed_expectations": 1, "expectations": 1, "report_path": 1,
                               "metrics": 1})
    runs: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        kept = runs.setdefault(row["suite"], [])
        if len(kept) < per_suite:
            kept.append(row)
    return dict(sorted(runs.items()))


def report_link(report_path: str | None, quality_dir: Any, base_url: str) -> str | None:
    """The Data Docs page of a run under `base_url` (the reports app), or None if it is not under the site."""
    if not report_path:
        return None
    from pathlib import Path

    try:
        relative = Path(report_path).resolve().relative_to(Path(quality_dir).resolve())
    except ValueError:
        return None
    return base_url.rstrip("/") + "/" + relative.as_posix()


# --- business signals, map, operations ----------------------------------------------------------


def payment_health(db: Any, w: Window) -> pd.DataFrame:
    """Failure rate per payment method per 5 event-time minutes (kpi_signals_5min)."""
    rows = db.find("kpi_signals_5min", {"bucket": {"$gte": w.start, "$lt": w.end}}, sort=[("bucket", 1)],
                   projection={"_id": 0, "bucket": 1, "payment": 1})
    flat = [{"bucket": r["bucket"], "payment_method": p["payment_method"], "transactions": p["transactions"],
             "failed_payments": p["failed_payments"], "failure_rate": p["failure_rate"]}
            for r in rows for p in r.get("payment", [])]
    return _frame(flat, ["bucket", "payment_method", "transactions", "failed_payments", "failure_rate"])


OPS_COLUMNS = ["opened_at", "kind", "status", "payment_method", "product", "location", "reason", "cleared_at",
               "peak_rate", "projected_stockout_at"]
TREND_COLUMNS = ["opened_at", "kind", "key", "status", "reason", "cleared_at", "peak_window_buyers"]


def ops_alerts(db: Any, limit: int = 50, kinds: Sequence[str] | None = None) -> pd.DataFrame:
    """Operational alerts (of `kinds`: payment spikes, stock depletion...), open ones first, then newest
    first (event time). Each page asks for its own kinds: stock alerts are many, and would crowd the
    payment spikes out of one shared list."""
    query = {"kind": {"$in": list(kinds)}} if kinds is not None else {}
    rows = db.find(OPS_ALERTS, query, sort=[("opened_at", -1)], limit=limit,
                   projection={c: 1 for c in OPS_COLUMNS})
    rows.sort(key=lambda r: r.get("status") != "open")  # stable: open first, each group newest first
    return _frame(rows, ["_id", *OPS_COLUMNS])


def trends_feed(db: Any, limit: int = 50) -> pd.DataFrame:
    rows = db.find(TRENDS, sort=[("opened_at", -1)], limit=limit, projection={c: 1 for c in TREND_COLUMNS})
    rows.sort(key=lambda r: r.get("status") != "open")
    return _frame(rows, ["_id", *TREND_COLUMNS])


def signals_state(db: Any) -> dict[str, Any] | None:
    """Where the business-signal walk stopped (`closed_until`), None before its first run."""
    return db.find_one(SIGNAL_STATE, {"_id": "business_signals"})


def alerts_by_city(db: Any, w: Window) -> pd.DataFrame:
    """Live alerts per location in the range (the alerts collection is small; its event_time is indexed)."""
    rows = db.aggregate(ALERTS, [
        {"$match": {"mode": {"$ne": "shadow"}, "event_time": {"$gte": w.start, "$lt": w.end}}},
        {"$group": {"_id": "$location", "alerts": {"$sum": 1}}}])
    return _frame([{"location": r["_id"], "alerts": r["alerts"]} for r in rows], ["location", "alerts"])


def city_map_frame(db: Any, w: Window) -> pd.DataFrame:
    """Revenue, transactions and alerts per city, with coordinates and country from the bundled table."""
    frame = by_city(db, w)
    alerts = alerts_by_city(db, w)
    frame = frame.merge(alerts, on="location", how="outer") if len(alerts) else frame.assign(alerts=0)
    frame["alerts"] = frame["alerts"].fillna(0).astype(int)
    frame[["revenue", "transactions"]] = frame[["revenue", "transactions"]].fillna(0)
    coords = [geo.lookup(str(c)) for c in frame["location"]]
    frame["lat"] = [c.lat if c else None for c in coords]
    frame["lon"] = [c.lon if c else None for c in coords]
    frame["country"] = [c.country if c else None for c in coords]
    return frame.sort_values("revenue", ascending=False, ignore_index=True)


def customers_summary(db: Any, w: Window) -> dict[str, Any] | None:
    """New and returning customers, repeat-purchase rate and order value per segment over the range's
    hours (kpi_customers_hour). A customer buying in several hours counts in each."""
    rows = db.find("kpi_customers_hour", {"hour": {"$gte": w.hour_start, "$lt": w.end}},
                   projection={"top": 0})
    if not rows:
        return None
    total = {k: sum(r[k] for r in rows) for k in ("customers", "new_customers", "returning_customers", "new_orders",
                                                  "returning_orders", "new_revenue", "returning_revenue")}
    return {
        **total,
        "repeat_purchase_rate": total["returning_customers"] / total["customers"] if total["customers"] else 0.0,
        "aov_new": total["new_revenue"] / total["new_orders"] if total["new_orders"] else None,
        "aov_returning": total["returning_revenue"] / total["returning_orders"] if total["returning_orders"] else None,
    }


def top_customers(db: Any, w: Window, limit: int = 10) -> pd.DataFrame:
    rows = db.find("kpi_customers_hour", {"hour": {"$gte": w.hour_start, "$lt": w.end}},
                   projection={"_id": 0, "top": 1})
    totals: dict[str, list[float]] = {}
    for r in rows:
        for t in r.get("top", []):
            acc = totals.setdefault(t["user_id"], [0, 0.0])
            acc[0] += t["orders"]
            acc[1] += t["revenue"]
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1][1], kv[0]))[:limit]
    return _frame([{"user_id": u, "orders": o, "revenue": x} for u, (o, x) in ranked], ["user_id", "orders", "revenue"])
