"""`CasesRepository`: the analyst desk's cases and alert dispositions in MongoDB.

The case sink and the desk commands change cases with conditional, atomic updates (`$setOnInsert`,
`$addToSet`, `$max`, "unless closed") so that a batch written twice, or two analysts acting at once,
never lose or duplicate an alert. A close is one conditional write that carries its own audit entry
(`pending_close`), finished idempotently afterwards (txnmon.jobs.cases), and an alert that reaches
a case closed without it reopens the case, in the same `upsert`. Those update shapes are about what
a case is, not about MongoDB in general, so they live here rather than in the generic `MongoStore`;
`txnmon.core.cases` is the pure reference for what they do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError

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
        values as sets and raise `max`'s fields. Idempotent: writing the same changes again is a no-op.

        Then a case the changes added alerts to that is closed, and was closed without one of those
        alerts (its `closed_with` lacks it: the sink read the case before an analyst closed it), is
        reopened, with `reopens` saying for which alerts (and the newest one's event time). This runs
        after the alerts are added, so a close that slips in between sees the alerts and nothing is
        reopened; a redelivery after a crash between the two writes reopens the case then. A case closed before
        `closed_with` existed is never reopened."""
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
        refused: BulkWriteError | None = None
        try:
            upserted = self.store.db[CASES].bulk_write(ops, ordered=False).upserted_count
        except BulkWriteError as exc:  # the other cases are written: they are still reopened, then it raises
            refused, upserted = exc, int(exc.details.get("nUpserted", 0))
        failed = {e.get("index") for e in refused.details.get("writeErrors", [])} if refused is not None else set()
        reopen = [UpdateOne({"_id": c["_id"], "status": "closed", "closed_with": {"$exists": True},
                             "$or": [{"closed_with": {"$ne": a}} for a in c["add_to_set"]["alert_ids"]]},
                            {"$set": {"status": "open"},
                             "$push": {"reopens": {"alert_ids": list(c["add_to_set"]["alert_ids"]),
                                                   "last_event_time": (c.get("max") or {}).get("last_event_time")}}})
                  for i, c in enumerate(changes) if i not in failed and c["add_to_set"].get("alert_ids")]
        if reopen:
            self.store.db[CASES].bulk_write(reopen, ordered=False)
        if refused is not None:
            raise refused
        return upserted

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
    def close(self, case_id: str, seen: Mapping[str, Any], fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """Set `fields` (the close, its `closed_with` and its `pending_close`) if the case is still as
        `seen` (same status, same number of alerts: alerts are only ever added); return it as it was,
        or None if it changed meanwhile (nothing written)."""
        query = {"_id": case_id, "status": seen.get("status", "open"),
                 "alert_ids": {"$size": len(seen.get("alert_ids", ()))}}
        return self.store.db[CASES].find_one_and_update(query, {"$set": dict(fields)},
                                                        return_document=ReturnDocument.BEFORE)

    @translated
    def pending_closes(self) -> list[dict[str, Any]]:
        """The cases whose close is written but not finished (labels, audit entry)."""
        return list(self.store.db[CASES].find({"pending_close": {"$exists": True}}))

    @translated
    def clear_pending_close(self, case_id: str, audit_id: str) -> None:
        """The close is finished: drop its pending part (only that close's, should another follow)."""
        self.store.db[CASES].update_one({"_id": case_id, "pending_close.audit_id": audit_id},
                                        {"$unset": {"pending_close": ""}})

    @translated
    def label_alerts(self, marks: Sequence[tuple[str, Mapping[str, Any], Mapping[str, Any]]]) -> int:
        """Dispositions for many alerts in one bulk write: (alert id, top-level fields, history entry).
        The entry is added as a set member: a close finished twice (after a crash) records it once."""
        if not marks:
            return 0
        ops = [UpdateOne({"_id": alert_id}, {"$set": dict(fields), "$addToSet": {"history": dict(entry)}}, upsert=True)
               for alert_id, fields, entry in marks]
        MongoStore.written[ALERT_DISPOSITIONS] += len(ops)
        result = self.store.db[ALERT_DISPOSITIONS].bulk_write(ops, ordered=False)
        return result.upserted_count + result.matched_count
