"""The audit trail: append one entry per action, read it back. Entries are never updated or deleted."""

from __future__ import annotations

import datetime as dt
import getpass
import uuid
from collections.abc import Mapping
from typing import Any

from txnmon.adapters.mongo import MongoStore
from txnmon.core.audit import audit_entry
from txnmon.core.collection_names import AUDIT_LOG


def who(by: str | None) -> str:
    """The analyst named, or the login name of whoever runs the command."""
    return (by or "").strip() or getpass.getuser()


def record(store: MongoStore, action: str, *, by: str, target: str, before: Mapping[str, Any] | None,
           after: Mapping[str, Any] | None, now: dt.datetime | None = None,
           detail: Mapping[str, Any] | None = None, entry_id: str | None = None) -> bool:
    """Append one entry; a natural `entry_id` makes it once-only (False: it was recorded before)."""
    entry = audit_entry(entry_id or f"{action}:{uuid.uuid4().hex}", action, who=by, at=now or dt.datetime.now(dt.UTC),
                        target=target, before=before, after=after, detail=detail)
    return store.insert_missing(AUDIT_LOG, [entry]).inserted == 1


def entries(store: MongoStore, target: str | None = None, action: str | None = None,
            limit: int = 100) -> list[dict[str, Any]]:
    """Newest first; for one object (`target`) or one kind of action."""
    query: dict[str, Any] = {}
    if target:
        query["target"] = target
    if action:
        query["action"] = action
    return store.find(AUDIT_LOG, query, sort=[("at", -1)], limit=limit)
