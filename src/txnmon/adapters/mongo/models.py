"""`ModelVersionsRepository`: the risk models registered by `txnmon models train`, one document per
version (metadata, the artifact's sha256, the holdout metrics), and which one is promoted.

Which one is promoted is one pointer document in its own collection (`model_promotion`, `_id:
"current"`), replaced by one atomic write: two promotes at once leave exactly one promoted (the last),
never two. It lives apart from `model_versions` because the Airflow role may insert versions there
(registering) but must not be able to promote one (docker/mongo-init.js): a `promoted` field on a
version document is never trusted, reads derive it from the pointer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pymongo import ReturnDocument

from txnmon.adapters.mongo.client import translated
from txnmon.adapters.mongo.store import MongoStore
from txnmon.core.collection_names import MODEL_PROMOTION, MODEL_VERSIONS

POINTER = "current"


class ModelVersionsRepository:
    """The `model_versions` collection and the promotion pointer on one store."""

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    def register(self, doc: Mapping[str, Any]) -> bool:
        """Store a new version under its `_id`; False if that version is stored already (left as it was)."""
        return self.store.insert_missing(MODEL_VERSIONS, [doc]).inserted == 1

    @translated
    def _pointer(self) -> dict[str, Any] | None:
        return self.store.db[MODEL_PROMOTION].find_one({"_id": POINTER})

    @staticmethod
    def _marked(doc: dict[str, Any] | None, pointer: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """`doc` with `promoted` (and when, by whom) as the pointer says, whatever the document holds."""
        if doc is None:
            return None
        for key in ("promoted_at", "promoted_by"):
            doc.pop(key, None)
        doc["promoted"] = pointer is not None and pointer.get("version") == doc["_id"]
        if doc["promoted"]:
            doc.update(promoted_at=pointer["at"], promoted_by=pointer["by"])  # type: ignore[index]
        return doc

    @translated
    def versions(self, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        pointer = self._pointer()
        found = self.store.db[MODEL_VERSIONS].find({}).sort([("created_at", -1), ("_id", -1)]).limit(limit)
        return [self._marked(d, pointer) for d in found]  # type: ignore[misc]

    @translated
    def get(self, version: str) -> dict[str, Any] | None:
        return self._marked(self.store.db[MODEL_VERSIONS].find_one({"_id": version}), self._pointer())

    def promoted_version(self) -> str | None:
        """The promoted version's id, from the pointer alone (the processor asks every few seconds)."""
        pointer = self._pointer()
        return None if pointer is None or pointer.get("version") is None else str(pointer["version"])

    def promotion(self) -> tuple[str, Any] | None:
        """The promoted version's id and when it was promoted: a version promoted again is a new promotion
        (the processor tries a version it refused again then)."""
        pointer = self._pointer()
        if pointer is None or pointer.get("version") is None:  # never promoted, or demoted
            return None
        return str(pointer["version"]), pointer.get("at")

    @translated
    def promoted(self) -> dict[str, Any] | None:
        pointer = self._pointer()
        if pointer is None or pointer.get("version") is None:
            return None
        return self._marked(self.store.db[MODEL_VERSIONS].find_one({"_id": pointer["version"]}), pointer)

    @translated
    def promote(self, version: str, *, at: dt.datetime, by: str) -> tuple[dict[str, Any], str | None] | None:
        """Make `version` the promoted one in one write; return it as it is now and the version it
        replaced (None: no such version, nothing changed)."""
        doc = self.store.db[MODEL_VERSIONS].find_one({"_id": version})
        if doc is None:
            return None
        pointer = {"version": version, "at": at, "by": by}
        before = self.store.db[MODEL_PROMOTION].find_one_and_update(
            {"_id": POINTER}, {"$set": pointer}, upsert=True, return_document=ReturnDocument.BEFORE)
        return self._marked(doc, pointer), (before or {}).get("version")  # type: ignore[return-value]

    @translated
    def demote(self, *, at: dt.datetime, by: str) -> str | None:
        """No model promoted from now on, in one write of the pointer (it keeps who and when); the version
        it replaced (None: none was promoted, nothing changed)."""
        before = self.store.db[MODEL_PROMOTION].find_one_and_update(
            {"_id": POINTER, "version": {"$ne": None}}, {"$set": {"version": None, "at": at, "by": by}},
            return_document=ReturnDocument.BEFORE)
        return None if before is None else str(before["version"])
