"""Alert triage: analysts mark alerts true or false positives; per-rule precision follows.

Dispositions live in their own collection (who, when, why, and the history of changes), so an
alert document is never modified. `kpi_rule_quality` (per rule and day: alerts, marked, true and
false positives, precision) is recomputed after each mark and by the kpi_rollups DAG.
"""

from __future__ import annotations

import datetime as dt
import getpass
from typing import Any

from include import mongo_io

DISPOSITIONS = "alert_dispositions"
RULE_QUALITY = "kpi_rule_quality"
CHOICES = ("true_positive", "false_positive")


class TriageError(ValueError):
    """The alert does not exist or the disposition is not one of CHOICES."""


def mark(db: Any, alert_id: str, disposition: str, reason: str = "", by: str | None = None,
         now: dt.datetime | None = None) -> dict[str, Any]:
    if disposition not in CHOICES:
        raise TriageError(f"disposition must be one of {', '.join(CHOICES)}, got {disposition!r}")
    alerts = mongo_io.find(db, mongo_io.ALERTS, {"_id": alert_id}, limit=1)
    if not alerts:
        raise TriageError(f"no alert {alert_id!r}")
    alert = alerts[0]
    now = now or dt.datetime.now(dt.UTC)
    by = by or getpass.getuser()
    previous = mongo_io.find(db, DISPOSITIONS, {"_id": alert_id}, limit=1)
    history = previous[0].get("history", []) if previous else []
    entry = {"disposition": disposition, "reason": reason, "by": by, "at": now}
    doc = {"_id": alert_id, "alert_id": alert_id, "rule": alert["rule"], "user_id": alert["user_id"],
           "event_time": alert["event_time"], **entry, "history": [*history, entry]}
    mongo_io.replace_document(db, DISPOSITIONS, doc)
    refresh_rule_quality(db)
    return doc


def rule_quality_pipeline() -> list[dict[str, Any]]:
    """Per rule and event-time day: alerts, marked, true/false positives, precision."""
    return [
        {"$match": {"event_time": {"$type": "date"}}},
        {"$lookup": {"from": DISPOSITIONS, "localField": "_id", "foreignField": "_id", "as": "d"}},
        {"$addFields": {"disposition": {"$ifNull": [{"$arrayElemAt": ["$d.disposition", 0]}, "unmarked"]}}},
        {"$group": {
            "_id": {"rule": "$rule", "day": {"$dateToString": {"date": "$event_time", "format": "%Y-%m-%d"}}},
            "alerts": {"$sum": 1},
            "true_positives": {"$sum": {"$cond": [{"$eq": ["$disposition", "true_positive"]}, 1, 0]}},
            "false_positives": {"$sum": {"$cond": [{"$eq": ["$disposition", "false_positive"]}, 1, 0]}},
        }},
        {"$project": {
            "_id": {"$concat": ["$_id.day", "|", "$_id.rule"]}, "rule": "$_id.rule",
            "day": {"$toDate": {"$concat": ["$_id.day", "T00:00:00Z"]}},
            "alerts": 1, "true_positives": 1, "false_positives": 1,
            "marked": {"$add": ["$true_positives", "$false_positives"]},
        }},
        {"$merge": {"into": RULE_QUALITY, "on": "_id", "whenMatched": "replace", "whenNotMatched": "insert"}},
    ]


def refresh_rule_quality(db: Any) -> None:
    mongo_io.aggregate(db, mongo_io.ALERTS, rule_quality_pipeline())


def rule_quality(db: Any) -> list[dict[str, Any]]:
    """Totals per rule over all days, with precision = true positives / marked (None if none marked)."""
    rows = mongo_io.aggregate(db, RULE_QUALITY, [
        {"$group": {"_id": "$rule", "alerts": {"$sum": "$alerts"}, "marked": {"$sum": "$marked"},
                    "true_positives": {"$sum": "$true_positives"}, "false_positives": {"$sum": "$false_positives"}}},
    ])
    out = []
    for r in sorted(rows, key=lambda r: r["_id"]):
        precision = r["true_positives"] / r["marked"] if r["marked"] else None
        out.append({"rule": r["_id"], "alerts": r["alerts"], "marked": r["marked"],
                    "true_positives": r["true_positives"], "false_positives": r["false_positives"],
                    "precision": precision})
    return out
