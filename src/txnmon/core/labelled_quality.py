"""Detection quality from labels stored with the transactions (a replayed `txnmon generate` file).

The generator labels each row with its clean `behaviour` or its `fraud_label` and
`fraud_incident`; the processor keeps unknown fields, and records `alert_flag` and
`alert_reasons` (live alerts). Two aggregations over the transactions and one pure function turn
that into what `txnmon backtest` reports: recall per fraud pattern (an incident is caught when one
of its transactions has an alert of the rule expected for its pattern) and false alerts per clean
behaviour. Data without labels gives empty tables.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from txnmon.core.backtest import PATTERN_RULES

_TEXT = {"$type": "string", "$ne": ""}


def behaviour_pipeline() -> list[dict[str, Any]]:
    """Clean transactions per behaviour: how many, how many with a live alert."""
    return [
        {"$match": {"behaviour": _TEXT, "fraud_label": {"$in": ["", None]}, "fraud_incident": {"$in": ["", None]}}},
        {"$group": {"_id": "$behaviour", "transactions": {"$sum": 1},
                    "alerted": {"$sum": {"$cond": [{"$eq": ["$alert_flag", True]}, 1, 0]}}}},
    ]


def incident_pipeline() -> list[dict[str, Any]]:
    """Each fraud incident: its pattern and the live alerts' rules of its transactions."""
    return [
        {"$match": {"fraud_label": _TEXT, "fraud_incident": _TEXT}},
        {"$group": {"_id": "$fraud_incident", "pattern": {"$first": "$fraud_label"},
                    "reasons": {"$push": "$alert_reasons"}}},
    ]


def labelled_report(behaviours: Iterable[Mapping[str, Any]],
                    incidents: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """{"patterns": [{pattern, incidents, caught, recall}], "behaviours": [{behaviour,
    transactions, false_alerts, rate}], "overall": [{transactions, false_alerts, rate}]}"""
    per_pattern: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for incident in incidents:
        pattern = str(incident["pattern"])
        expected = set(PATTERN_RULES.get(pattern, ()))
        rules = {rule for reasons in incident.get("reasons") or [] for rule in (reasons or [])}
        per_pattern[pattern][0] += 1
        per_pattern[pattern][1] += int(bool(rules & expected if expected else rules))
    patterns = [{"pattern": p, "incidents": n, "caught": c, "recall": c / n}
                for p, (n, c) in sorted(per_pattern.items())]
    rows = sorted(behaviours, key=lambda r: str(r["_id"]))
    clean = [{"behaviour": r["_id"], "transactions": r["transactions"], "false_alerts": r["alerted"],
              "rate": r["alerted"] / r["transactions"] if r["transactions"] else 0.0} for r in rows]
    total = sum(r["transactions"] for r in rows)
    alerted = sum(r["alerted"] for r in rows)
    overall = [{"transactions": total, "false_alerts": alerted, "rate": alerted / total}] if total else []
    return {"patterns": patterns, "behaviours": clean, "overall": overall}
