"""The audit trail's entries: who did what to which object, when, with the before and after.

Entries are built here (pure) and appended by the jobs; nothing in txnmon updates or deletes one.
`_id` is given by the caller (a random id per action, or a natural id for events that must be
recorded once, such as a rules version loaded), so an entry is written at most once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

ACTIONS = (
    "alert.mark", "case.assign", "case.note", "case.close", "list.add", "list.remove",
    "dlq.redrive", "rules.loaded", "notify.resend", "apikey.create", "apikey.revoke",
    "model.promote", "model.demote",
)

# fields of a case document that an audit entry does not copy (they only grow and say nothing new)
_SKIP = {"alert_ids", "exposures"}


def snapshot(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A document as the audit keeps it: without the bulky grow-only fields."""
    if doc is None:
        return None
    return {k: v for k, v in doc.items() if k not in _SKIP}


def audit_entry(entry_id: str, action: str, *, who: str, at: dt.datetime, target: str,
                before: Mapping[str, Any] | None, after: Mapping[str, Any] | None,
                detail: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One append-only audit record."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if not who:
        raise ValueError("an audit entry needs who")
    entry: dict[str, Any] = {"_id": entry_id, "action": action, "who": who, "at": at, "target": target,
                             "before": snapshot(before), "after": snapshot(after)}
    if detail:
        entry["detail"] = dict(detail)
    return entry


def changed_fields(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> list[str]:
    """The names of the fields that differ between before and after (for one-line displays)."""
    b, a = dict(before or {}), dict(after or {})
    return sorted(k for k in set(b) | set(a) if k not in _SKIP and b.get(k) != a.get(k))
