"""Cases: a user's alerts grouped for one analyst, as pure functions (no I/O, no clock).

A new alert joins the user's open case whose window it falls in, otherwise it opens a case.
`assign_cases` decides this from the alerts of a batch and the user's cases already stored, and
returns idempotent changes: a case's `_id` is derived from its user and its first alert, alerts
and exposures are added as sets, and an alert already in a case stays in that case. So a batch
written twice (a retry, a redelivery after a crash) lands in the same case and changes nothing.

Lifecycle: open -> investigating (assigned) -> closed with a resolution. Closing as fraud or
legitimate labels the case's alerts true or false positive (`disposition_for`). A close records the
alerts it covered (`closed_with`); an alert that reaches the case after that (the processor read the
case before the close) reopens it (`reopens`): the alert is never left unseen in a closed case.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from txnmon.errors import UsageError

STATUSES = ("open", "investigating", "closed")
RESOLUTIONS = ("fraud_confirmed", "legitimate", "inconclusive")
DISPOSITION_OF_RESOLUTION = {"fraud_confirmed": "true_positive", "legitimate": "false_positive"}
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}
# A case holds at most this many alerts; the next alert of its user opens a new case. Keeps a case
# document far below MongoDB's 16 MiB however many alerts one user raises (an unbounded `$addToSet`
# grew a case until every write of its user was refused).
MAX_CASE_ALERTS = 1000


class CaseError(UsageError):
    """A case action that cannot be done: unknown case, bad status or resolution, closed already."""


def case_id_for(user_id: str, first_alert_id: str) -> str:
    """Deterministic: the same user and first alert always name the same case."""
    return f"case:{user_id}:{first_alert_id}"


@dataclass
class CaseChange:
    """What to write for one case: created if missing, alerts and exposures added as sets."""

    case_id: str
    user_id: str
    window_start: dt.datetime
    window_end: dt.datetime
    opened_at: dt.datetime
    alert_ids: list[str] = field(default_factory=list)
    exposures: list[dict[str, Any]] = field(default_factory=list)  # {transaction_id, amount}, once each
    rules: list[str] = field(default_factory=list)
    severity: str = "low"
    last_event_time: dt.datetime | None = None
    founded_at: tuple[int, ...] | None = None  # the first alert's position in the user's stream


Position = tuple[int, ...]


def _position(value: Any) -> Position | None:
    return tuple(value) if value is not None else None


def _founding(case: Mapping[str, Any]) -> tuple[Any, ...]:
    founded = case.get("founded_at")
    return (founded is not None, tuple(founded) if founded is not None else (), case["window_start"], case["_id"])


def assign_cases(alerts: Sequence[Mapping[str, Any]], known: Iterable[Mapping[str, Any]],
                 window: dt.timedelta, positions: Mapping[str, Position] | None = None) -> list[CaseChange]:
    """The case changes for a batch's alerts, given the stored cases of the same users.

    `known` holds case documents (`_id`, `user_id`, `status`, `window_start`, `window_end`,
    `alert_ids`). Alerts are taken in arrival order (the order the detector judged them, which no
    crash changes), never re-sorted, so any split of a stream into batches gives the same cases.
    An alert already in a known case goes (again) to that case; otherwise it joins the user's
    newest open or investigating case whose window has not ended at the alert's event
    time; otherwise it opens a case whose window is [alert time, alert time + window).
    Changes are returned in a stable order. A case that holds `MAX_CASE_ALERTS` alerts (earlier in
    the stream than this alert) takes no more: the alert opens the user's next case.

    `positions` (alert id -> its place in the user's stream, e.g. (offset, n-th alert of that
    transaction)) make it exact under partial writes: a stored case founded at or after an alert's
    position did not exist yet when that alert was first judged, so the alert may not join it. A
    crash after some of a batch's cases were written, and a redelivery split into other batches,
    then still give the cases of an uninterrupted run (the property test shows it).
    """
    positions = positions or {}
    cases: dict[str, dict[str, Any]] = {}
    by_user: dict[str, list[str]] = {}
    home: dict[str, str] = {}  # alert id -> case id
    members: dict[str, set[str]] = {}  # case id -> its alert ids, stored or added here
    pending = {a["_id"] for a in alerts}  # not placed yet: a stored case holding one of them holds it later
    # in founding order (the order an uninterrupted run opened them), not by window: with events out
    # of event-time order a later case can start earlier, and "the user's newest case" must be the
    # same whether the cases come from memory or from the store
    for case in sorted(known, key=lambda c: (c.get("founded_at") is not None, _position(c.get("founded_at")) or (),
                                              c["window_start"], c["_id"])):
        doc = {"_id": case["_id"], "user_id": case["user_id"], "status": case.get("status", "open"),
               "window_start": case["window_start"], "window_end": case["window_end"],
               "founded_at": _position(case.get("founded_at"))}
        cases[case["_id"]] = doc
        by_user.setdefault(case["user_id"], []).append(case["_id"])
        members[case["_id"]] = set(case.get("alert_ids", ()))
        for alert_id in members[case["_id"]]:
            home[alert_id] = case["_id"]
    changes: dict[str, CaseChange] = {}
    for alert in alerts:
        user, t, here = str(alert["user_id"]), alert["event_time"], positions.get(alert["_id"])
        target = home.get(alert["_id"])
        if target is None:
            # the user's most recently founded case first: founding order is the stream's order,
            # the same whether a case was read from the store or opened in this batch
            for cid in sorted(by_user.get(user, []), key=lambda k: _founding(cases[k]), reverse=True):
                c = cases[cid]
                founded = c["founded_at"]
                if founded is not None and here is not None and founded >= here:
                    continue  # written by an earlier attempt of this stretch of stream: not there yet for this alert
                if c["status"] != "closed" and t < c["window_end"]:
                    held = members.get(cid, set())
                    if len(held) - len(held & pending) >= MAX_CASE_ALERTS:
                        break  # full: the alert opens the user's next case
                    target = cid
                    break
        if target is None:
            target = case_id_for(user, alert["_id"])
            cases[target] = {"_id": target, "user_id": user, "status": "open", "window_start": t,
                             "window_end": t + window, "founded_at": here}
            by_user.setdefault(user, []).append(target)
        home[alert["_id"]] = target
        pending.discard(alert["_id"])
        members.setdefault(target, set()).add(alert["_id"])
        c = cases[target]
        change = changes.get(target)
        if change is None:
            change = changes[target] = CaseChange(target, user, c["window_start"], c["window_end"],
                                                  opened_at=alert.get("created_at") or t, founded_at=c["founded_at"])
        if alert["_id"] not in change.alert_ids:
            change.alert_ids.append(alert["_id"])
        exposure = {"transaction_id": alert["transaction_id"], "amount": float(alert.get("amount") or 0)}
        if exposure not in change.exposures:
            change.exposures.append(exposure)
        if alert["rule"] not in change.rules:
            change.rules.append(alert["rule"])
        if SEVERITY_RANK.get(alert.get("severity", "low"), 0) > SEVERITY_RANK[change.severity]:
            change.severity = alert["severity"]
        if change.last_event_time is None or t > change.last_event_time:
            change.last_event_time = t
    return [changes[k] for k in sorted(changes)]


def new_case_fields(change: CaseChange) -> dict[str, Any]:
    """The fields a case gets when it is created (never overwritten afterwards)."""
    return {"case_id": change.case_id, "user_id": change.user_id, "status": "open", "resolution": None,
            "assignee": None, "notes": [], "window_start": change.window_start, "window_end": change.window_end,
            "opened_at": change.opened_at, "first_event_time": change.window_start,
            "founded_at": list(change.founded_at) if change.founded_at is not None else None}


def amount_at_risk(case: Mapping[str, Any]) -> float:
    """The sum of the amounts of the case's alerted transactions, each transaction counted once."""
    seen: dict[str, float] = {}
    for e in case.get("exposures", ()):
        seen[e["transaction_id"]] = float(e["amount"])
    return round(sum(seen.values()), 2)


def case_age(case: Mapping[str, Any], now: dt.datetime) -> dt.timedelta:
    """Open cases: since opened. Closed ones: how long they were open."""
    end = case.get("closed_at") or now
    return end - case["opened_at"]


def severity_of(case: Mapping[str, Any]) -> str:
    """The highest severity among the case's alerts (stored as a rank, which the store can `$max`)."""
    rank = case.get("severity_rank", 0)
    return next((name for name, r in SEVERITY_RANK.items() if r == rank), "low")


def case_summary(case: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """A case as the inbox shows it: severity, amount at risk and age computed."""
    return {**case, "severity": severity_of(case), "amount_at_risk": amount_at_risk(case),
            "alerts": len(case.get("alert_ids", ())), "age": case_age(case, now)}


def inbox_order(cases: Iterable[Mapping[str, Any]], now: dt.datetime) -> list[dict[str, Any]]:
    """Highest severity, then highest amount at risk, then oldest first."""
    rows = [case_summary(c, now) for c in cases]
    return sorted(rows, key=lambda r: (-r.get("severity_rank", 0), -r["amount_at_risk"],
                                       r["opened_at"], r["_id"]))


def check_resolution(resolution: str) -> None:
    if resolution not in RESOLUTIONS:
        raise CaseError(f"resolution must be one of {', '.join(RESOLUTIONS)}, got {resolution!r}")


def check_status(status: str) -> None:
    if status not in STATUSES:
        raise CaseError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")


def require_text(value: str | None, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise CaseError(f"{what} must not be empty")
    return text


def assign_update(case: Mapping[str, Any], assignee: str) -> dict[str, Any]:
    """Fields to set when a case is assigned: an open case moves to investigating."""
    if case.get("status") == "closed":
        raise CaseError(f"case {case['_id']} is closed")
    return {"assignee": require_text(assignee, "assignee"), "status": "investigating"}


def note_entry(text: str, by: str, now: dt.datetime) -> dict[str, Any]:
    return {"text": require_text(text, "a note"), "by": require_text(by, "the author"), "at": now}


def close_update(case: Mapping[str, Any], resolution: str, by: str, now: dt.datetime) -> dict[str, Any]:
    check_resolution(resolution)
    if case.get("status") == "closed":
        raise CaseError(f"case {case['_id']} is closed already ({case.get('resolution')})")
    return {"status": "closed", "resolution": resolution, "closed_at": now, "closed_by": require_text(by, "closer"),
            "closed_with": list(case.get("alert_ids", []))}


def reopens(case: Mapping[str, Any], alert_ids: Iterable[str]) -> bool:
    """A closed case reopens when an alert arrives that its close did not cover (a case closed before
    `closed_with` was recorded never does)."""
    covered = case.get("closed_with")
    return case.get("status") == "closed" and covered is not None and any(a not in covered for a in alert_ids)


def disposition_for(resolution: str) -> str | None:
    """fraud_confirmed -> true_positive, legitimate -> false_positive, inconclusive -> no label."""
    return DISPOSITION_OF_RESOLUTION.get(resolution)


def apply_change(case: Mapping[str, Any] | None, change: CaseChange) -> dict[str, Any]:
    """What the store does with a change (the reference for CasesRepository.upsert): create the
    case if missing, add alerts, exposures and rules as sets, raise severity and last event time."""
    doc = dict(case) if case is not None else {"_id": change.case_id, **new_case_fields(change),
                                               "alert_ids": [], "exposures": [], "rules": []}
    for name, values in (("alert_ids", change.alert_ids), ("exposures", change.exposures), ("rules", change.rules)):
        current = list(doc.get(name, []))
        current += [v for v in values if v not in current]
        doc[name] = current
    if reopens(doc, change.alert_ids):
        doc["status"] = "open"
        doc["reopens"] = [*doc.get("reopens", []), {"alert_ids": list(change.alert_ids),
                                                    "last_event_time": change.last_event_time}]
    doc["severity_rank"] = max(doc.get("severity_rank", 0), SEVERITY_RANK[change.severity])
    if change.last_event_time is not None and (doc.get("last_event_time") is None
                                               or change.last_event_time > doc["last_event_time"]):
        doc["last_event_time"] = change.last_event_time
    return doc
