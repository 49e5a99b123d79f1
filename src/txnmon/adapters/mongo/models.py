"""`ModelVersionsRepository`: the risk models registered by `txnmon models train`, one document per
version (metadata, the artifact's path and sha256, the holdout metrics), and which one is promoted.

At most one version is promoted: promoting one first demotes the others. The two writes are not one
transaction; a crash between them leaves none promoted (never two), and the promote is run again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pymongo import ReturnDocument

from txnmon.adapters.mongo.client import translated
from txnmon.adapters.mongo.store import MongoStore
from txnmon.core.collection_names import MODEL_VERSIONS


class ModelVersionsRepository:
    """The `model_versions` collection on one store."""

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    def register(self, doc: Mapping[str, Any]) -> bool:
        """Store a new version under its `_id`; False if that version is stored already (left as it was)."""
        return self.store.insert_missing(MODEL_VERSIONS, [doc]).inserted == 1

    @translated
    def versions(self, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        return list(self.store.db[MODEL_VERSIONS].find({}).sort([("created_at", -1), ("_id", -1)]).limit(limit))

    @translated
    def get(self, version: str) -> dict[str, Any] | None:
        return self.store.db[MODEL_VERSIONS].find_one({"_id": version})

    @translated
    def promoted(self) -> dict[str, Any] | None:
        return self.store.db[MODEL_VERSIONS].find_one({"promoted": True})

    @translated
    def promote(self, version: str, *, at: dt.datetime, by: str) -> dict[str, Any] | None:
        """Make `version` the one promoted; return it as it is now (None: no such version)."""
        collection = self.store.db[MODEL_VERSIONS]
        if collection.find_one({"_id": version}, {"_id": 1}) is None:
            return None
        collection.update_many({"promoted": True, "_id": {"$ne": version}}, {"$set": {"promoted": False}})
        return collection.find_one_and_update(
            {"_id": version}, {"$set": {"promoted": True, "promoted_at": at, "promoted_by": by}},
            return_document=ReturnDocument.AFTER)
