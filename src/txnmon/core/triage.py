"""Alert triage as data: the dispositions analysts give, and the per-rule precision pipeline.

Dispositions live in their own collection (who, when, why, and the history of changes), so an
alert document is never modified. `kpi_rule_quality` (per rule and day: alerts, marked, true and
false positives, precision) is what `rule_quality_pipeline` materialises; the job that marks and
refreshes is src/txnmon/jobs/triage.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from txnmon.core.collection_names import ALERT_DISPOSITIONS, RULE_QUALITY
from txnmon.errors import UsageError

CHOICES = ("true_positive", "false_positive")


class TriageError(UsageError):
    """The alert does not exist or the disposition is not one of CHOICES."""


def check_disposition(disposition: str) -> None:
    if disposition not in CHOICES:
        raise TriageError(f"disposition must be one of {', '.join(CHOICES)}, got {disposition!r}")


def disposition_entry(disposition: str, reason: str, by: str, now: dt.datetime) -> dict[str, Any]:
    return {"disposition": disposition, "reason": reason, "by": by, "at": now}


def disposition_fields(alert: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    """The disposition document's top level after this mark (the latest entry); `history` gets the
    entry appended in the same atomic update, so concurrent marks never lose one."""
    return {"alert_id": alert["_id"], "rule": alert["rule"], "user_id": alert["user_id"],
            "event_time": alert["event_time"], **entry}


SEVERITIES = ("low", "medium", "high")
_COUNTED = {"alerts": None, "true_positives": "true_positive", "false_positives": "false_positive"}


def _per_severity_sums() -> dict[str, Any]:
    """`<severity>_alerts`, `<severity>_true_positives`, `<severity>_false_positives` (a typology's
    alerts differ in severity: the desk weighs a high one differently from a low one)."""
    out: dict[str, Any] = {}
    for severity in SEVERITIES:
        for name, disposition in _COUNTED.items():
            test: list[Any] = [{"$eq": ["$severity", severity]}]
            if disposition is not None:
                test.append({"$eq": ["$disposition", disposition]})
            out[f"{severity}_{name}"] = {"$sum": {"$cond": [{"$and": test}, 1, 0]}}
    return out


def rule_quality_pipeline() -> list[dict[str, Any]]:
    """Per rule and event-time day: alerts, marked, true/false positives, precision, and the same
    counts per severity."""
    return [
        {"$match": {"event_time": {"$type": "date"}}},
        {"$lookup": {"from": ALERT_DISPOSITIONS, "localField": "_id", "foreignField": "_id", "as": "d"}},
        {"$addFields": {"disposition": {"$ifNull": [{"$arrayElemAt": ["$d.disposition", 0]}, "unmarked"]}}},
        {"$group": {
            "_id": {"rule": "$rule", "day": {"$dateToString": {"date": "$event_time", "format": "%Y-%m-%d"}}},
            "alerts": {"$sum": 1},
            "true_positives": {"$sum": {"$cond": [{"$eq": ["$disposition", "true_positive"]}, 1, 0]}},
            "false_positives": {"$sum": {"$cond": [{"$eq": ["$disposition", "false_positive"]}, 1, 0]}},
            **_per_severity_sums(),
        }},
        {"$project": {
            "_id": {"$concat": ["$_id.day", "|", "$_id.rule"]}, "rule": "$_id.rule",
            "day": {"$toDate": {"$concat": ["$_id.day", "T00:00:00Z"]}},
            "alerts": 1, "true_positives": 1, "false_positives": 1,
            "marked": {"$add": ["$true_positives", "$false_positives"]},
            **{name: 1 for name in _per_severity_sums()},
        }},
        {"$merge": {"into": RULE_QUALITY, "on": "_id", "whenMatched": "replace", "whenNotMatched": "insert"}},
    ]


def precision_rows(rows: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Totals per rule with precision = true positives / marked (None if none marked)."""
    out = []
    for r in sorted(rows, key=lambda r: r["_id"]):
        precision = r["true_positives"] / r["marked"] if r["marked"] else None
        out.append({"rule": r["_id"], "alerts": r["alerts"], "marked": r["marked"],
                    "true_positives": r["true_positives"], "false_positives": r["false_positives"],
                    "precision": precision})
    return out


def severity_rows(rows: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Totals per severity over `kpi_rule_quality` rows: alerts, marked, true and false positives,
    and the share of marked alerts that analysts called false (None if none marked)."""
    out = []
    for severity in SEVERITIES:
        alerts = sum(r.get(f"{severity}_alerts", 0) for r in rows)
        tp = sum(r.get(f"{severity}_true_positives", 0) for r in rows)
        fp = sum(r.get(f"{severity}_false_positives", 0) for r in rows)
        out.append({"severity": severity, "alerts": alerts, "marked": tp + fp, "true_positives": tp,
                    "false_positives": fp, "false_share": fp / (tp + fp) if tp + fp else None})
    return out
