"""`WatermarksRepository`: per Kafka partition, the newest event times the processor (and `txnmon events`,
for the event topics) has stored.

The processor saves them with each batch and loads a partition's when it is assigned one, so the
lateness it judges events by survives restarts and rebalances. They are the processor's own
bookkeeping, keyed by topic and partition, and have no place among the generic `MongoStore` calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    def save(self, topic: str, marks: Mapping[int, Mapping[str, Any]]) -> None:
        """Per partition of `topic`, its watermark fields (`core.watermark.stored`: the newest event
        times seen, those before the last batch and the offset after it), one small document each."""
        if marks:
            MongoStore.written[WATERMARKS] += len(marks)
            ops = [UpdateOne({"_id": f"{topic}:{p}"}, {"$set": {"topic": topic, "partition": p, **fields}},
                             upsert=True) for p, fields in marks.items()]
            self.store.db[WATERMARKS].bulk_write(ops, ordered=False)

    @translated
    def load(self, topic: str, partitions: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Per partition, what `save` stored (documents written before `before` existed have only `newest`)."""
        ids = [f"{topic}:{p}" for p in sorted(set(partitions))]
        if not ids:
            return {}
        return {d["partition"]: {k: d[k] for k in ("newest", "before", "next_offset") if k in d}
                for d in self.store.db[WATERMARKS].find({"_id": {"$in": ids}})}

    @translated
    def load_topic(self, topic: str) -> dict[int, dict[str, Any]]:
        """Per partition of `topic` with a stored document, what `save` stored (any member's)."""
        fields = ("newest", "before", "next_offset", "stored_at")
        return {d["partition"]: {k: d[k] for k in fields if k in d}
                for d in self.store.db[WATERMARKS].find({"topic": topic}, {"partition": 1, **dict.fromkeys(fields, 1)})}
