"""What `POST /v1/decisions` answers: the processor's own verdict on one transaction, read back from what it
stored, mapped to approve / review / decline. Pure: no I/O, no clock (src/txnmon/jobs/api_reads.py reads the
documents, src/txnmon/api/reads.py waits for them).

The verdict is the stream's, never a second opinion: the transaction document the processor stored
(`alert_reasons`, `risk_score`, `rules_version`, `content_hash`) and the alert documents about it. The
processor writes the transaction before its alerts (src/txnmon/pipeline/orders.py), so a verdict is
complete only once every alert its `alert_reasons` names is stored too (raised or suppressed); until then
the answer is `pending`, never an early `approve`.

The mapping, in order:
- an alert of the `listed` rule naming a blocking list (`blocked_users`): decline;
- otherwise the highest severity among the alerts that count: high: decline; medium or low: review;
- no alert that counts: approve.
An alert counts unless it is a shadow alert (a rule on trial must not change what anyone sees) or was
silenced by a `trusted_users` entry (the analyst's decision: `suppressed_by` "list:trusted_users:<user>:<rule>"
for the alert's own user and rule, see `trusted`). A repeat folded
into an earlier alert (`suppressed_by` an alert id) counts: it was not re-notified, but the transaction
still shows it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from txnmon.api import views
from txnmon.core import lists
from txnmon.core.batch import content_fingerprint
from txnmon.core.contract import parse_transaction
from txnmon.core.records import Rejection

APPROVE, REVIEW, DECLINE, PENDING = "approve", "review", "decline", "pending"
BLOCKING_LISTS = frozenset({"blocked_users"})
SEVERITY_DECISION = {"high": DECLINE, "medium": REVIEW, "low": REVIEW}

Stored = tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]  # (transaction document, alert documents)


class BadParameter(ValueError):
    """A query parameter that cannot be used; the message names it."""


def wait_ms_of(raw: str | None, default: int, maximum: int) -> int:
    """How long to wait for the verdict: `?wait_ms=` (0 up to the server's maximum), else the default."""
    if raw is None:
        return min(default, maximum)
    text = raw.strip()
    # isdigit() alone takes "²" (int() refuses it: a 500) and "٣" (int() reads it): ASCII digits only
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise BadParameter(f"wait_ms must be a whole number of milliseconds from 0 to {maximum} (got {raw[:40]!r})")
    value = int(text)
    if value > maximum:
        raise BadParameter(f"wait_ms {value} is over the server's maximum, {maximum} (API_DECISION_MAX_WAIT_MS)")
    return value


def identity(record: Any, *, zone: ZoneInfo, now: dt.datetime, max_bytes: int) -> tuple[str, str] | None:
    """The transaction id and the content fingerprint the processor will store for this record (the same
    parse and digest as src/txnmon/core/batch.py), or None for a record the contract refuses."""
    try:
        raw = json.dumps(record, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError, RecursionError):
        return None
    parsed = parse_transaction(raw, zone=zone, now=now, max_bytes=max_bytes)
    if isinstance(parsed, Rejection):
        return None
    return str(parsed["transaction_id"]), content_fingerprint(parsed)


def expected_alert_ids(tx: Mapping[str, Any]) -> list[str]:
    """The ids of the live alerts (raised or suppressed) the processor stores with this transaction."""
    return [f"{tx['_id']}:{rule}" for rule in tx.get("alert_reasons") or ()]


def is_complete(tx: Mapping[str, Any], alerts: Iterable[Mapping[str, Any]]) -> bool:
    """Whether every alert the transaction document names is stored (the batch's alerts sink has run)."""
    return set(expected_alert_ids(tx)) <= {str(a.get("_id")) for a in alerts}


def is_final(tx: Mapping[str, Any], alerts: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the verdict can be given: complete, or an alert is missing for good (`alerts_refused`: MongoDB
    refused it and the processor sent the transaction's record to the DLQ; src/txnmon/jobs/api_reads.py)."""
    return is_complete(tx, alerts) or bool(tx.get("alerts_refused"))


def conflicts(tx: Mapping[str, Any], fingerprint: str | None) -> bool:
    """Another transaction is stored under this id (other content): the processor sends ours to the DLQ
    as `duplicate_id_conflict`, and the stored verdict is not about it."""
    stored = tx.get("content_hash")
    return fingerprint is not None and stored is not None and stored != fingerprint


def trusted(alert: Mapping[str, Any]) -> bool:
    """Whether a `trusted_users` entry silenced the alert. The processor stores no kind of suppression, only
    `suppressed_by`: "list:<entry id>" for a trust (src/txnmon/core/rules/conditions.py, `silence_trusted`),
    "<earlier transaction id>:<rule>" for a repeat, so a prefix test takes the repeat of transaction "list:x"
    for a trust. The trust's value is exactly that of the entry for this alert's own user and rule; a repeat
    has it only if the user's earlier transaction id is literally "list:trusted_users:<user>"."""
    if alert.get("user_id") is None or not alert.get("rule"):
        return False
    entry = lists.entry_id(lists.TRUSTED_USERS, lists.normalise(alert["user_id"]), str(alert["rule"]))
    return alert.get("suppressed_by") == f"list:{entry}"


def counts(alert: Mapping[str, Any]) -> bool:
    """Whether an alert weighs on the decision (see the module's docstring)."""
    return alert.get("mode") != "shadow" and not trusted(alert)


def blocks(alert: Mapping[str, Any]) -> bool:
    """An alert of the `listed` rule for an entry of a blocking list."""
    if alert.get("rule") != "listed":
        return False
    entries = (alert.get("explanation") or {}).get("entries") or ()
    return any(isinstance(e, Mapping) and e.get("list") in BLOCKING_LISTS for e in entries)


def decide(alerts: Iterable[Mapping[str, Any]]) -> str:
    """approve, review or decline from the alerts about one transaction."""
    counted = [a for a in alerts if counts(a)]
    if any(blocks(a) for a in counted):
        return DECLINE
    decisions = {SEVERITY_DECISION.get(str(a.get("severity", "")).lower(), REVIEW) for a in counted}
    if DECLINE in decisions:
        return DECLINE
    return REVIEW if decisions else APPROVE


def _alert_view(alert: Mapping[str, Any]) -> dict[str, Any]:
    view = {"alert_id": alert.get("alert_id") or alert.get("_id"), "rule": alert.get("rule"),
            "severity": alert.get("severity"), "reason": views.reason(alert),
            "explanation": views.explanation(alert.get("explanation")), "counted": counts(alert)}
    for optional in ("suppressed_by", "completed_by", "mode"):
        if alert.get(optional) is not None and (optional != "mode" or alert[optional] != "live"):
            view[optional] = alert[optional]
    return view


def verdict(tx: Mapping[str, Any], alerts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The answer for a complete verdict: the decision, the score, the alerts with why they fired (never a
    shadow alert, nor who added a list entry: src/txnmon/api/views.py)."""
    shown = [a for a in alerts if not views.is_shadow(a)]
    ordered = sorted(shown, key=lambda a: (not counts(a), str(a.get("_id"))))
    answer = {"transaction_id": str(tx["_id"]), "decision": decide(alerts), "score": tx.get("risk_score", 0),
              "alerts": [_alert_view(a) for a in ordered], "rules_version": tx.get("rules_version"),
              "processed_time": tx.get("processed_time")}
    refused = tx.get("alerts_refused")
    if refused and not is_complete(tx, alerts):
        # the missing alert may have been high: never approve without it, and say why
        stored = {str(a.get("_id")) for a in alerts}
        answer["decision"] = DECLINE if answer["decision"] == DECLINE else REVIEW
        answer["alerts_missing"] = [a for a in expected_alert_ids(tx) if a not in stored]
        answer["note"] = (f"an alert about this transaction could not be stored ({refused.get('reason')}; DLQ "
                          f"record {refused.get('dlq_id')}): review it by hand")
    return answer


def location(transaction_id: str) -> str:
    return f"/v1/decisions/{quote(transaction_id, safe='')}"


def pending(transaction_id: str, reason: str) -> dict[str, Any]:
    """The answer when the verdict is not stored yet: where to ask for it later."""
    url = location(transaction_id)
    return {"transaction_id": transaction_id, "decision": PENDING, "location": url, "url": url, "reason": reason}
