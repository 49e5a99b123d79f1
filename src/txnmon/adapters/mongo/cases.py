"""`CasesRepository`: the analyst desk's cases and alert dispositions in MongoDB.

The case sink and the desk commands change cases with conditional, atomic updates (`$setOnInsert`,
`$addToSet`, `$max`, "unless closed") so that a batch written twice, or two analysts acting at once,
never lose or duplicate an alert. Those update shapes are about what a case is, not about MongoDB
in general, so they live here rather than in the generic `MongoStore`; `txnmon.core.cases` is the
pure reference for what they do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pymongo import ReturnDocument, UpdateOne

from txnmon.adapters.mongo.client import translated
from txnmon.adapters.mongo.store import MongoStore
from txnmon.core.collection_names import ALERT_DISPOSITIONS, CASES


class CasesRepository:
    """Cases (`cases`) and alert dispositions (`alert_dispositions`) on one store."""

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    @translated
    def of_users(self, user_ids: Iterable[str], ending_after: Any) -> list[dict[str, Any]]:
        """The users' cases whose window ends after `ending_after` (the ones a new alert can join)."""
        users = sorted(set(user_ids))
        if not users:
            return []
        return list(self.store.db[CASES].find({"user_id": {"$in": users}, "window_end": {"$gt": ending_after}},
                                              {"user_id": 1, "status": 1, "window_start": 1, "window_end": 1,
                                               "alert_ids": 1, "founded_at": 1}))

    @translated
    def upsert(self, changes: Sequence[Mapping[str, Any]]) -> int:
        """One unordered bulk write: per case, create it if missing (`on_insert`), add `add_to_set`'s
        values as sets and raise `max`'s fields. Idempotent: writing the same changes again is a no-op."""
        if not changes:
            return 0
        ops = []
        for c in changes:
            update: dict[str, Any] = {"$setOnInsert": dict(c["on_insert"]),
                                      "$addToSet": {k: {"$each": list(v)} for k, v in c["add_to_set"].items()}}
            if c.get("max"):
                update["$max"] = dict(c["max"])
            ops.append(UpdateOne({"_id": c["_id"]}, update, upsert=True))
        MongoStore.written[CASES] += len(ops)
        result = self.store.db[CASES].bulk_write(ops, ordered=False)
        return result.upserted_count

    @translated
    def update(self, case_id: str, unless_status: str | None, fields: Mapping[str, Any],
               note: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """Set `fields` (and append `note`) unless the case has status `unless_status`; return the case
        as it was before, or None if there is no such case or it has that status (nothing changed)."""
        query: dict[str, Any] = {"_id": case_id}
        if unless_status is not None:
            query["status"] = {"$ne": unless_status}
        update: dict[str, Any] = {}
        if fields:
            update["$set"] = dict(fields)
        if note is not None:
            update["$push"] = {"notes": dict(note)}
        return self.store.db[CASES].find_one_and_update(query, update, return_document=ReturnDocument.BEFORE)

    @translated
    def label_alerts(self, marks: Sequence[tuple[str, Mapping[str, Any], Mapping[str, Any]]]) -> int:
        """Dispositions for many alerts in one bulk write: (alert id, top-level fields, history entry)."""
        if not marks:
            return 0
        ops = [UpdateOne({"_id": alert_id}, {"$set": dict(fields), "$push": {"history": dict(entry)}}, upsert=True)
               for alert_id, fields, entry in marks]
        MongoStore.written[ALERT_DISPOSITIONS] += len(ops)
        result = self.store.db[ALERT_DISPOSITIONS].bulk_write(ops, ordered=False)
        return result.upserted_count + result.matched_count
