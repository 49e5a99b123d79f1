"""`WatermarksRepository`: per Kafka partition, the newest event times the processor has stored.

The processor saves them with each batch and loads a partition's when it is assigned one, so the
lateness it judges events by survives restarts and rebalances. They are the processor's own
bookkeeping, keyed by topic and partition, and have no place among the generic `MongoStore` calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pymongo import UpdateOne

from txnmon.adapters.mongo.client import translated
from txnmon.adapters.mongo.store import MongoStore
from txnmon.core.collection_names import WATERMARKS


class WatermarksRepository:
    """The `watermarks` collection (one small document per topic partition) on one store."""

    def __init__(self, store: MongoStore) -> None:
        self.store = store

    @translated
    def save(self, topic: str, newest: Mapping[int, Sequence[Any]]) -> None:
        """Per partition of `topic`, the newest event times seen (one small document each)."""
        if newest:
            MongoStore.written[WATERMARKS] += len(newest)
            ops = [UpdateOne({"_id": f"{topic}:{p}"}, {"$set": {"topic": topic, "partition": p, "newest": list(times)}},
                             upsert=True) for p, times in newest.items()]
            self.store.db[WATERMARKS].bulk_write(ops, ordered=False)

    @translated
    def load(self, topic: str, partitions: Iterable[int]) -> dict[int, list[Any]]:
        ids = [f"{topic}:{p}" for p in sorted(set(partitions))]
        if not ids:
            return {}
        return {d["partition"]: d.get("newest", []) for d in self.store.db[WATERMARKS].find({"_id": {"$in": ids}})}
