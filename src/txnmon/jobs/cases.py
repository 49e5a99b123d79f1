"""Cases for analysts: the inbox, one case with its timeline, and the actions (assign, note, close).

Every action leaves exactly one audit entry. Closing as fraud or legitimate labels the case's
alerts true or false positive (as `txnmon alerts mark` does) and refreshes `kpi_rule_quality`.

A close is one conditional write (the case as the analyst saw it: same status, same alerts) that
sets the close and carries what is left to do, `pending_close`: the alerts to label and the audit
entry with its id. `finish_close` then labels, refreshes and appends the audit entry, each step
idempotent, and drops `pending_close`. A failure in between (an outage, a crash) leaves the case
closed with its `pending_close`: the next close, `txnmon cases close` retried included, finishes
it first (`finish_pending_closes`), so the close is never half-applied for good, nor unaudited.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from txnmon.adapters.mongo import CasesRepository, MongoStore
from txnmon.core import cases as core
from txnmon.core.audit import snapshot
from txnmon.core.collection_names import (
    ALERT_DISPOSITIONS,
    ALERTS,
    CASES,
    SHADOW_ALERTS,
    SUPPRESSED_ALERTS,
    TRANSACTIONS,
)
from txnmon.core.triage import disposition_entry, disposition_fields
from txnmon.jobs import audit
from txnmon.jobs.triage import refresh_rule_quality


def _now(now: dt.datetime | None) -> dt.datetime:
    return now or dt.datetime.now(dt.UTC)


def list_cases(store: MongoStore, *, status: str | None = None, rule: str | None = None,
               assignee: str | None = None, user_id: str | None = None, limit: int = 200,
               now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Cases by severity, amount at risk and age; `status=None` means every case not closed."""
    query: dict[str, Any] = {}
    if status:
        core.check_status(status)
        query["status"] = status
    else:
        query["status"] = {"$ne": "closed"}
    if rule:
        query["rules"] = rule
    if assignee:
        query["assignee"] = assignee
    if user_id:
        query["user_id"] = user_id
    # the most severe and oldest first from the server, so a limit keeps the cases that matter most
    found = store.find(CASES, query, sort=[("severity_rank", -1), ("opened_at", 1)], limit=limit)
    return core.inbox_order(found, _now(now))


def get_case(store: MongoStore, case_id: str) -> dict[str, Any]:
    case = store.find_one(CASES, {"_id": case_id})
    if case is None:
        raise core.CaseError(f"no case {case_id!r}")
    return case


def show_case(store: MongoStore, case_id: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """The case with its alerts, the user's transactions around it, and its audit trail."""
    case = core.case_summary(get_case(store, case_id), _now(now))
    alerts = store.find(ALERTS, {"_id": {"$in": list(case.get("alert_ids", []))}}, sort=[("event_time", 1)])
    margin = dt.timedelta(hours=1)
    end = case.get("last_event_time") or case["window_end"]
    timeline = store.find(TRANSACTIONS, {"user_id": case["user_id"],
                                         "event_time": {"$gte": case["window_start"] - margin, "$lte": end + margin}},
                          sort=[("event_time", 1)], limit=500,
                          projection={"amount": 1, "location": 1, "event_time": 1, "payment_method": 1,
                                      "alert_reasons": 1, "risk_score": 1, "type": 1, "status": 1})
    return {"case": case, "alerts": alerts, "timeline": timeline, "audit": audit.entries(store, target=case_id)}


def _after(before: dict[str, Any], fields: dict[str, Any], note: dict[str, Any] | None = None) -> dict[str, Any]:
    after = {**before, **fields}
    if note is not None:
        after["notes"] = [*before.get("notes", []), note]
    return after


def assign(store: MongoStore, case_id: str, assignee: str, by: str | None = None,
           now: dt.datetime | None = None) -> dict[str, Any]:
    case = get_case(store, case_id)
    fields = core.assign_update(case, assignee)
    before = CasesRepository(store).update(case_id, "closed", fields)
    if before is None:
        raise core.CaseError(f"case {case_id} was closed meanwhile")
    after = _after(before, fields)
    audit.record(store, "case.assign", by=audit.who(by), target=case_id, before=before, after=after, now=_now(now))
    return after


def note(store: MongoStore, case_id: str, text: str, by: str | None = None,
         now: dt.datetime | None = None) -> dict[str, Any]:
    entry = core.note_entry(text, audit.who(by), _now(now))
    before = CasesRepository(store).update(case_id, None, {}, note=entry)
    if before is None:
        raise core.CaseError(f"no case {case_id!r}")
    after = _after(before, {}, entry)
    audit.record(store, "case.note", by=entry["by"], target=case_id, before=before, after=after, now=entry["at"])
    return after


def close(store: MongoStore, case_id: str, resolution: str, by: str | None = None, reason: str = "",
          now: dt.datetime | None = None) -> dict[str, Any]:
    """Close with a resolution; fraud_confirmed / legitimate label every alert of the case."""
    when, analyst = _now(now), audit.who(by)
    core.check_resolution(resolution)
    finish_pending_closes(store)  # a close interrupted before (this one retried, or another case's)
    for _ in range(3):  # the case changed between our read and our write: read it again
        case = get_case(store, case_id)
        fields = core.close_update(case, resolution, analyst, when)
        if reason.strip():
            fields["close_reason"] = reason.strip()
        pending = {"audit_id": f"case.close:{uuid.uuid4().hex}", "at": when, "by": analyst, "reason": reason,
                   "resolution": resolution,
                   "disposition": core.disposition_for(resolution), "alert_ids": fields["closed_with"],
                   "before": snapshot(case)}
        if CasesRepository(store).close(case_id, case, {**fields, "pending_close": pending}) is not None:
            return finish_close(store, case_id)
    raise core.CaseError(f"case {case_id} keeps changing (new alerts, other analysts): look at it again and retry")


def finish_close(store: MongoStore, case_id: str) -> dict[str, Any]:
    """Finish a written close: label its alerts, refresh rule quality, append its audit entry (once,
    under the id the close chose), then drop `pending_close`. Every step may run again; return the
    case after the close."""
    case = get_case(store, case_id)
    pending = case.get("pending_close")
    after = {k: v for k, v in case.items() if k != "pending_close"}
    if pending is None:
        return after
    disposition, when, analyst = pending["disposition"], pending["at"], pending["by"]
    labelled = 0
    if disposition is not None:
        alerts = store.find(ALERTS, {"_id": {"$in": list(pending["alert_ids"])}})
        entry = {**disposition_entry(disposition, pending["reason"] or
                                     f"case {case_id} closed as {pending['resolution']}", analyst, when),
                 "case_id": case_id}
        labelled = CasesRepository(store).label_alerts([(a["_id"], disposition_fields(a, entry), entry)
                                                        for a in alerts])
        refresh_rule_quality(store)
    closed = {k: case[k] for k in ("status", "resolution", "closed_at", "closed_by", "close_reason", "closed_with")
              if k in case}
    audit.record(store, "case.close", by=analyst, target=case_id, before=pending["before"],
                 after={**pending["before"], **closed, "status": "closed"}, now=when,
                 detail={"alerts_labelled": labelled, "disposition": disposition}, entry_id=pending["audit_id"])
    CasesRepository(store).clear_pending_close(case_id, pending["audit_id"])
    return after


def finish_pending_closes(store: MongoStore) -> list[str]:
    """Finish every close left half-done by a failure; return the cases finished."""
    done = []
    for case in CasesRepository(store).pending_closes():
        finish_close(store, case["_id"])
        done.append(case["_id"])
    return done


def show_alert(store: MongoStore, alert_id: str) -> dict[str, Any]:
    """An alert (raised, suppressed or shadow) with why it fired, its disposition and its case."""
    for collection in (ALERTS, SUPPRESSED_ALERTS, SHADOW_ALERTS):
        alert = store.find_one(collection, {"_id": alert_id})
        if alert is not None:
            break
    else:
        raise core.CaseError(f"no alert {alert_id!r}")
    counted = (alert.get("explanation") or {}).get("counted") or []
    prior = store.find(TRANSACTIONS, {"_id": {"$in": list(counted)}}, sort=[("event_time", 1)],
                       projection={"amount": 1, "location": 1, "event_time": 1, "type": 1, "status": 1}) \
        if counted else []
    return {"alert": alert, "collection": collection, "counted_transactions": prior,
            "disposition": store.find_one(ALERT_DISPOSITIONS, {"_id": alert_id}),
            "case": store.find_one(CASES, {"alert_ids": alert_id})}
