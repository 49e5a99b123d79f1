"""`OutboxRepository`: the notifications outbox and the destinations' shared rate limits.

Notify workers (`txnmon.jobs.notify`) deliver alerts from a MongoDB outbox, several at once and
across processes, so every step is a conditional update on the entry's lease: claim the entry due
first, give it back untried, settle the attempt only while still holding it, requeue the dead ones.
A destination's rate limit is one shared document advanced by compare-and-set. Those protocols are
the outbox's, not the generic store's, and live here together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo import errors as mongo_errors

from txnmon.adapters.mongo.client import translated
from txnmon.adapters.mongo.store import MongoStore
from txnmon.core.collection_names import NOTIFICATIONS, NOTIFY_RATES


class OutboxRepository:
    """The `notifications` outbox and the `notify_rates` rate-limit state on one store."""

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    @translated
    def claim(self, owner: str, now: Any, lease_until: Any,
              skip_destinations: Sequence[str] = ()) -> dict[str, Any] | None:
        """Lease the pending entry due first (not leased, or its lease over) to `owner`; None if none is due.

        One atomic find_one_and_update, so several workers never hold the same entry at once.
        """
        query: dict[str, Any] = {"status": "pending", "next_attempt_at": {"$lte": now},
                                 "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}]}
        if skip_destinations:
            query["destination"] = {"$nin": list(skip_destinations)}
        return self.store.db[NOTIFICATIONS].find_one_and_update(
            query, {"$set": {"lease_owner": owner, "lease_until": lease_until}},
            sort=[("next_attempt_at", ASCENDING)], return_document=ReturnDocument.AFTER)

    @translated
    def release(self, entry_id: str, owner: str) -> None:
        """Give a leased entry back untried (its destination's rate limit said wait): no attempt counted."""
        self.store.db[NOTIFICATIONS].update_one({"_id": entry_id, "lease_owner": owner},
                                                {"$set": {"lease_owner": None, "lease_until": None}})

    @translated
    def reserve_send(self, destination: str, now: float,
                     slot: Callable[[float | None, float], tuple[float | None, float]], attempts: int = 20) -> float:
        """Take a send slot of `destination` in its shared rate limit (NOTIFY_RATES: one document holding
        the `tat` that `slot(tat, now)` advances). 0.0: taken; otherwise the seconds to wait. A
        compare-and-set on `tat`, retried when another worker changed it in between."""
        rates = self.store.db[NOTIFY_RATES]
        for _ in range(attempts):
            doc = rates.find_one({"_id": destination})
            tat = None if doc is None else doc.get("tat")
            new_tat, wait = slot(tat, now)
            if new_tat is None:
                return wait
            if doc is None:
                try:
                    rates.insert_one({"_id": destination, "tat": new_tat})
                    return 0.0
                except mongo_errors.DuplicateKeyError:
                    continue
            if rates.update_one({"_id": destination, "tat": tat}, {"$set": {"tat": new_tat}}).modified_count == 1:
                return 0.0
        return 1.0 / 1000  # contended all along: try again shortly

    @translated
    def settle(self, entry_id: str, owner: str, fields: Mapping[str, Any], attempt: Mapping[str, Any]) -> bool:
        """The outcome of `owner`'s attempt: set `fields`, count it, log it, end the lease. False: the
        lease was lost meanwhile (another worker owns the entry now) and nothing was changed."""
        result = self.store.db[NOTIFICATIONS].update_one(
            {"_id": entry_id, "lease_owner": owner},
            {"$set": {**dict(fields), "lease_owner": None, "lease_until": None}, "$inc": {"attempts": 1},
             "$push": {"attempt_log": dict(attempt)}})  # at most NOTIFY_MAX_ATTEMPTS per life
        return result.modified_count == 1

    @translated
    def requeue_dead(self, query: Mapping[str, Any], now: Any, by: str) -> list[str]:
        """Dead entries matching `query` back to pending, due now, attempts from zero; return their ids."""
        selected = {**dict(query), "status": "dead"}
        notifications = self.store.db[NOTIFICATIONS]
        ids = [d["_id"] for d in notifications.find(selected, {"_id": 1})]
        if ids:
            notifications.update_many(
                {"_id": {"$in": ids}, "status": "dead"},
                {"$set": {"status": "pending", "attempts": 0, "next_attempt_at": now, "lease_owner": None,
                          "lease_until": None, "resent_at": now, "resent_by": by}})
        return ids
