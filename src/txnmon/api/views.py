"""What the HTTP API shows of the stored alerts, cases and dispositions: only what an integration needs
(why an alert fired, its severity, a case's status and outcome). Pure: no I/O.

Kept back, whatever key asks: shadow alerts (a rule on trial must not be seen outside the desk), the
analysts' notes and who wrote them (case notes, disposition reasons and history, assignees, closers), and
who added a list entry (`added_by`, also quoted in a `listed` alert's reason). Each view copies the
fields it names, so a field the processor or the desk adds later stays private until it is named here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from txnmon.core.collection_names import SHADOW_ALERTS

ALERT_FIELDS = ("alert_id", "transaction_id", "user_id", "rule", "severity", "reason", "explanation", "amount",
                "location", "event_time", "created_at", "rules_version", "suppressed_by", "completed_by")
CASE_FIELDS = ("case_id", "user_id", "status", "resolution", "severity", "rules", "alert_ids", "opened_at",
               "closed_at", "window_start", "window_end")


def is_shadow(alert: Mapping[str, Any]) -> bool:
    return alert.get("mode") == "shadow"


def explanation(why: Any) -> Any:
    """An alert's explanation without who added the list entries it names."""
    if not isinstance(why, Mapping) or not isinstance(why.get("entries"), list):
        return why
    entries = [{k: v for k, v in e.items() if k != "added_by"} if isinstance(e, Mapping) else e
               for e in why["entries"]]
    return {**why, "entries": entries}


def reason(alert: Mapping[str, Any]) -> Any:
    """The alert's reason without ", added by <who>" (the `listed` rule quotes each entry's author)."""
    text = alert.get("reason")
    why = alert.get("explanation")
    if not isinstance(text, str) or not isinstance(why, Mapping):
        return text
    for entry in why.get("entries") or ():
        if isinstance(entry, Mapping) and entry.get("added_by"):
            text = text.replace(f", added by {entry['added_by']})", ")")
    return text


def alert(doc: Mapping[str, Any]) -> dict[str, Any]:
    """An alert as the API shows it (not for a shadow alert: callers leave those out)."""
    out = {k: doc[k] for k in ALERT_FIELDS if doc.get(k) is not None}
    out.setdefault("alert_id", doc.get("_id"))
    if "explanation" in out:
        out["explanation"] = explanation(doc["explanation"])
    if "reason" in out:
        out["reason"] = reason(doc)
    return out


def alert_answer(found: Mapping[str, Any]) -> dict[str, Any] | None:
    """GET /v1/alerts/{id}: the alert, the transactions it counted, the disposition (its value and when,
    not the analyst's reason) and the case's status and outcome; None (a 404) for a shadow alert."""
    doc = found.get("alert") or {}
    if found.get("collection") == SHADOW_ALERTS or is_shadow(doc):
        return None
    disposition = found.get("disposition")
    case = found.get("case")
    return {"alert": alert(doc), "collection": found.get("collection"),
            "counted_transactions": list(found.get("counted_transactions") or []),
            "disposition": None if not disposition else {"disposition": disposition.get("disposition"),
                                                         "at": disposition.get("at")},
            "case": None if not case else {"case_id": case.get("case_id") or case.get("_id"),
                                           **{k: case.get(k) for k in ("status", "resolution", "severity")}}}


def case_answer(found: Mapping[str, Any]) -> dict[str, Any]:
    """GET /v1/cases/{id}: the case's status and outcome with its (live) alerts, no notes or assignee."""
    case = found.get("case") or {}
    shown = {k: case.get(k) for k in CASE_FIELDS if k in case}
    shown.setdefault("case_id", case.get("_id"))
    return {"case": shown, "alerts": [alert(a) for a in found.get("alerts") or () if not is_shadow(a)]}
