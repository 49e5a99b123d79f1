"""`RedriveRepository`: claims on rejected records while `txnmon dlq redrive` sends them back to Kafka.

A re-drive run claims the dead-lettered records it is about to resend (by a run token), marks the
ones Kafka acknowledged, and releases the rest, so two runs at once never send a record twice and a
killed run's claim goes stale instead of blocking the records for good. These claims are state on
the `rejected` collection that only the re-drive job reads; they live here, not in the generic store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from txnmon.adapters.mongo.client import translated
from txnmon.adapters.mongo.store import MongoStore
from txnmon.core.collection_names import REJECTED


class RedriveRepository:
    """Re-drive claims on the `rejected` collection (the dead-letter records) of one store."""

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    @translated
    def claim(self, ids: Sequence[str], token: str, at: Any, *, stale_before: Any, force: bool = False) -> int:
        """Claim rejected records for one re-drive run (`token`): those not re-driven yet and not
        claimed by a live run (a claim older than `stale_before` is over). `force` claims them all."""
        if not ids:
            return 0
        query: dict[str, Any] = {"_id": {"$in": list(ids)}}
        if not force:
            query["redriven_at"] = {"$exists": False}
            query["$or"] = [{"redrive_claim": {"$exists": False}}, {"redrive_claim.at": {"$lt": stale_before}}]
        result = self.store.db[REJECTED].update_many(query, {"$set": {"redrive_claim": {"token": token, "at": at}}})
        return result.modified_count

    @translated
    def mark_redriven(self, token: str, ids: Sequence[str], at: Any) -> None:
        """Kafka acknowledged these: mark them re-driven and end this run's claim."""
        if ids:
            self.store.db[REJECTED].update_many({"_id": {"$in": list(ids)}, "redrive_claim.token": token},
                                                {"$set": {"redriven_at": at}, "$unset": {"redrive_claim": ""}})

    @translated
    def release(self, token: str, ids: Sequence[str]) -> None:
        """End this run's claim without marking (the messages were not sent): re-drivable at once."""
        if ids:
            self.store.db[REJECTED].update_many({"_id": {"$in": list(ids)}, "redrive_claim.token": token},
                                                {"$unset": {"redrive_claim": ""}})
