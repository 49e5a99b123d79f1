"""`ListsRepository`: the named lists' entries (blocked users, risky locations, trusted users...).

Analysts add and remove entries from the desk and the processor reloads the live ones between
batches. An entry is never deleted: removing one stamps `removed_at`, and adding it again replaces
it under the same `_id`, so the audit trail can always show what an entry was. Those rules, and the
"live at a time" query the processor depends on, are kept here beside the generic `MongoStore`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pymongo import ReturnDocument
from pymongo import errors as mongo_errors

from txnmon.adapters.mongo.client import translated
from txnmon.adapters.mongo.store import MongoStore
from txnmon.core.collection_names import LIST_CHANGES, LIST_ENTRIES

# the one document of LIST_CHANGES: `seq` moves on with every change of an entry
_MARK = "lists"
log = logging.getLogger("txnmon.adapters.mongo.lists")


class ListsRepository:
    """The `list_entries` collection on one store."""

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    @translated
    def put_entry(self, entry: Mapping[str, Any]) -> dict[str, Any] | None:
        """Store a list entry under its `_id` (a re-added entry replaces the old one); return the old one."""
        MongoStore.written[LIST_ENTRIES] += 1
        before = self.store.db[LIST_ENTRIES].find_one_and_replace({"_id": entry["_id"]}, dict(entry), upsert=True,
                                                                  return_document=ReturnDocument.BEFORE)
        self._changed()
        return before

    @translated
    def remove_entry(self, entry_id: str, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """Mark an entry removed (it stays, for the record); return it as it was, None if absent or removed."""
        before = self.store.db[LIST_ENTRIES].find_one_and_update({"_id": entry_id, "removed_at": None},
                                                                 {"$set": dict(fields)},
                                                                 return_document=ReturnDocument.BEFORE)
        if before is not None:
            self._changed()
        return before

    def _changed(self) -> None:
        """Move the mark, after the entry's write: a reader that sees the new mark reads the entries after it,
        so it finds the entry. Best effort: the entry is written already, and the caller's audit entry must
        follow it; an unmoved mark only delays the processor's reload to its periodic full read (a role
        made before list_changes existed may not write it: docs/scaling.md)."""
        try:
            self.store.db[LIST_CHANGES].update_one({"_id": _MARK}, {"$inc": {"seq": 1}}, upsert=True)
        except mongo_errors.PyMongoError as exc:
            log.warning("list change written but not signalled to the processor (it reads the lists again "
                        "within 5 minutes): %s", exc)

    @translated
    def change_mark(self) -> int:
        """How many times the entries changed through this repository (0 before the first change): one
        document read, where reading the live entries is a scan of all of them (the processor asks this
        every few seconds and reloads the entries only when it moved)."""
        found = self.store.db[LIST_CHANGES].find_one({"_id": _MARK})
        return int(found.get("seq", 0)) if found else 0

    @translated
    def live_entries(self) -> list[dict[str, Any]]:
        """Entries not removed (what the processor loads between batches). Expired ones too: whether
        an entry applies is decided per transaction by its event time (txnmon.core.lists.is_active),
        and a lagging processor or a backfill judges events from before the expiry."""
        return list(self.store.db[LIST_ENTRIES].find({"removed_at": None}))
