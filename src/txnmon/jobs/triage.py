"""Alert triage: analysts mark alerts true or false positives; per-rule precision follows."""

from __future__ import annotations

import datetime as dt
import getpass
import time
from typing import Any

from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import ALERT_DISPOSITIONS, ALERTS, RULE_QUALITY, TRANSACTIONS
from txnmon.core.labelled_quality import behaviour_pipeline, incident_pipeline, labelled_report
from txnmon.core.triage import (
    TriageError,
    check_disposition,
    disposition_entry,
    disposition_fields,
    precision_rows,
    rule_quality_pipeline,
    severity_rows,
)
from txnmon.errors import StoreUnavailable
from txnmon.jobs import audit


def mark(store: MongoStore, alert_id: str, disposition: str, reason: str = "", by: str | None = None,
         now: dt.datetime | None = None) -> dict[str, Any]:
    check_disposition(disposition)
    alert = store.find_one(ALERTS, {"_id": alert_id})
    if alert is None:
        raise TriageError(f"no alert {alert_id!r}")
    entry = disposition_entry(disposition, reason, by or getpass.getuser(), now or dt.datetime.now(dt.UTC))
    before = store.find_one(ALERT_DISPOSITIONS, {"_id": alert_id})
    doc = store.append_to_history(ALERT_DISPOSITIONS, alert_id, disposition_fields(alert, entry), entry)
    refresh_rule_quality(store)
    audit.record(store, "alert.mark", by=entry["by"], target=alert_id, now=entry["at"],
                 before={k: v for k, v in before.items() if k != "history"} if before else None,
                 after={k: v for k, v in doc.items() if k != "history"})
    return doc


def refresh_rule_quality(store: MongoStore, attempts: int = 5) -> None:
    """Recompute kpi_rule_quality; a merge racing another one (two analysts marking at once) is retried."""
    for attempt in range(attempts):
        try:
            store.aggregate(ALERTS, rule_quality_pipeline())
            return
        except StoreUnavailable:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def rule_quality(store: MongoStore) -> list[dict[str, Any]]:
    """Totals per rule over all days, with precision = true positives / marked (None if none marked)."""
    rows = store.aggregate(RULE_QUALITY, [
        {"$group": {"_id": "$rule", "alerts": {"$sum": "$alerts"}, "marked": {"$sum": "$marked"},
                    "true_positives": {"$sum": "$true_positives"}, "false_positives": {"$sum": "$false_positives"}}},
    ])
    return precision_rows(rows)


def severity_quality(store: MongoStore) -> list[dict[str, Any]]:
    """Per severity over all rules and days: alerts, marked, true/false positives, false share."""
    return severity_rows(store.find(RULE_QUALITY))


def labelled_quality(store: MongoStore) -> dict[str, list[dict[str, Any]]]:
    """Recall per fraud pattern and false alerts per clean behaviour, from the labels a replayed
    generated file carries (empty tables for unlabelled data)."""
    return labelled_report(store.aggregate(TRANSACTIONS, behaviour_pipeline()),
                           store.aggregate(TRANSACTIONS, incident_pipeline()))
