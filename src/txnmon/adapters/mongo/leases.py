"""`LeasesRepository`: named, expiring leases that let one process at a time run a job.

The KPI rollups and the business-signal job may be started by Airflow, the CLI and a test at once;
each holds a lease (one document per job, owner and expiry) while it runs and renews it as it goes.
A lease held by a crashed owner simply expires. Taking it is a single conditional upsert, so two
contenders never both win; that rule belongs to leases, not to the generic `MongoStore`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pymongo
from pymongo import errors as mongo_errors

from txnmon.adapters.mongo.client import translated
from txnmon.adapters.mongo.store import MongoStore
from txnmon.core.collection_names import LEASES


class LeasesRepository:
    """The `leases` collection on one store."""

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    @translated
    def acquire(self, name: str, owner: str, now: Any, until: Any, *, timeout_s: float | None = None) -> bool:
        """Hold the lease `name` until `until` if it is free, expired or already `owner`'s (renewing it).
        `timeout_s` bounds the whole call (a renewal that hangs past it is no renewal)."""
        try:
            with pymongo.timeout(timeout_s) if timeout_s is not None else contextlib.nullcontext():
                self.store.db[LEASES].find_one_and_update(
                    {"_id": name, "$or": [{"owner": None}, {"owner": owner}, {"until": {"$lt": now}}]},
                    {"$set": {"owner": owner, "until": until, "renewed_at": now}}, upsert=True)
        except mongo_errors.DuplicateKeyError:
            return False  # held by another owner: the upsert found no free lease and collided with it
        return True

    @translated
    def release(self, name: str, owner: str) -> None:
        self.store.db[LEASES].update_one({"_id": name, "owner": owner}, {"$set": {"owner": None, "until": None}})
