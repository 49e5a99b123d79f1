"""KPI rollups as data: the aggregation pipelines that `$merge` into `kpi_*` collections.

Pipelines are built by `rollup_pipeline()`, so tests can read them without a server; the job
that runs them is include/jobs/rollups.py.
A run recomputes every event-time hour touched by transactions (or alerts) processed in its
interval, whole, so late data and replays of old files are counted once and correctly;
`full_rebuild` recomputes every hour there is. Every rollup document has a stable `_id`
(the bucket and its keys as text), so re-running a run replaces documents with equal ones.
The collections are described for BI users in docs/rollups.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from include.core.collection_names import ALERTS, TRANSACTIONS

HOUR_FMT = "%Y-%m-%dT%H"
MINUTE_FMT = "%Y-%m-%dT%H:%M"

_status = {"$ifNull": ["$status", "success"]}
_type = {"$ifNull": ["$type", "purchase"]}
_is_sale = {"$and": [{"$ne": [_status, "failed"]}, {"$ne": [_type, "refund"]}]}
_is_refund = {"$and": [{"$ne": [_status, "failed"]}, {"$eq": [_type, "refund"]}]}

# Measures of the transaction rollups. Revenue counts successful purchases only: failed payments
# took no money and refunds gave it back (they are summed apart).
TX_MEASURES: dict[str, Any] = {
    "transactions": {"$sum": 1},
    "revenue": {"$sum": {"$cond": [_is_sale, "$amount", 0]}},
    "sales": {"$sum": {"$cond": [_is_sale, 1, 0]}},
    "avg_amount": {"$avg": "$amount"},
    "alerted_transactions": {"$sum": {"$cond": [{"$eq": ["$alert_flag", True]}, 1, 0]}},
    "failed_payments": {"$sum": {"$cond": [{"$eq": [_status, "failed"]}, 1, 0]}},
    "refunds": {"$sum": {"$cond": [_is_refund, 1, 0]}},
    "refund_amount": {"$sum": {"$cond": [_is_refund, "$amount", 0]}},
    "late_transactions": {"$sum": {"$cond": [{"$eq": ["$late", True]}, 1, 0]}},
}
ALERT_MEASURES: dict[str, Any] = {
    "alerts": {"$sum": 1},
    "amount": {"$sum": "$amount"},
    "users": {"$addToSet": "$user_id"},
}


@dataclass(frozen=True)
class Rollup:
    """One kpi_* collection: the source, the time grain and the keys it groups by."""

    collection: str
    source: str
    grain: str  # "minute" | "hour"
    keys: tuple[tuple[str, str], ...]  # (output field, source field), missing values become "(none)"
    measures: dict[str, Any]
    description: str


ROLLUPS: tuple[Rollup, ...] = (
    Rollup("kpi_revenue_minute", TRANSACTIONS, "minute", (), TX_MEASURES,
           "revenue and transaction count per minute, with average amount and alerted transactions"),
    Rollup("kpi_location_hour", TRANSACTIONS, "hour", (("location", "location"),), TX_MEASURES,
           "revenue per location (city) per hour"),
    Rollup("kpi_product_hour", TRANSACTIONS, "hour", (("product", "product"), ("category", "category")),
           TX_MEASURES, "revenue per product and category per hour"),
    Rollup("kpi_payment_hour", TRANSACTIONS, "hour", (("payment_method", "payment_method"),), TX_MEASURES,
           "revenue per payment method per hour"),
    Rollup("kpi_value_category_hour", TRANSACTIONS, "hour", (("value_category", "value_category"),),
           TX_MEASURES, "revenue per value category (Low / Medium / High) per hour"),
    Rollup("kpi_alerts_hour", ALERTS, "hour", (("rule", "rule"), ("severity", "severity")), ALERT_MEASURES,
           "live alerts per rule and severity per hour (shadow alerts excluded)"),
)
ROLLUP_NAMES = tuple(r.collection for r in ROLLUPS)


def _bucket_expr(grain: str) -> dict[str, Any]:
    return {"$dateToString": {"date": "$event_time", "format": MINUTE_FMT if grain == "minute" else HOUR_FMT}}


def rollup_pipeline(rollup: Rollup, hours: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The aggregation for `rollup`, limited to the given event-time hours (None = all of them)."""
    stages: list[dict[str, Any]] = []
    match: dict[str, Any] = {"event_time": {"$type": "date"}}
    if rollup.source == ALERTS:
        match["mode"] = {"$ne": "shadow"}
    if hours:
        first, last = min(hours), max(hours)
        match["event_time"] = {"$gte": hour_start(first), "$lt": hour_start(last) + dt.timedelta(hours=1)}
    stages.append({"$match": match})
    if hours:
        stages.append({"$addFields": {"_hour": {"$dateToString": {"date": "$event_time", "format": HOUR_FMT}}}})
        stages.append({"$match": {"_hour": {"$in": sorted(set(hours))}}})
    group_id: dict[str, Any] = {"bucket": _bucket_expr(rollup.grain)}
    for out, src in rollup.keys:
        group_id[out] = {"$ifNull": [f"${src}", "(none)"]}
    stages.append({"$group": {"_id": group_id, **rollup.measures}})
    suffix = ":00Z" if rollup.grain == "minute" else ":00:00Z"
    projection: dict[str, Any] = {
        "_id": {"$concat": ["$_id.bucket", *[part for out, _ in rollup.keys for part in ("|", f"$_id.{out}")]]},
        rollup.grain: {"$toDate": {"$concat": ["$_id.bucket", suffix]}},
        **{out: f"$_id.{out}" for out, _ in rollup.keys},
        **{m: 1 for m in rollup.measures if m != "users"},
    }
    if "users" in rollup.measures:
        projection["users"] = {"$size": "$users"}
    stages.append({"$project": projection})
    stages.append({"$merge": {"into": rollup.collection, "on": "_id", "whenMatched": "replace",
                              "whenNotMatched": "insert"}})
    return stages


def hour_start(hour: str) -> dt.datetime:
    return dt.datetime.strptime(hour, HOUR_FMT).replace(tzinfo=dt.UTC)
