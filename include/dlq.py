"""Rejected events as data: list them, and send chosen ones back through the pipeline after a fix.

Every DLQ record is also a document in the `rejected` collection (reason, stage, source
position, first seen, original bytes, rules version). A re-drive marks each record before
sending it, so a record is re-driven once, and a second re-drive of it does nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from include import kafka_io, mongo_io
from include.config import Settings


@dataclass(frozen=True)
class Redrive:
    selected: int
    sent: int
    already_redriven: int


def _query(reason: str | None, since: dt.datetime | None, include_redriven: bool = True) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if reason:
        query["reason"] = reason
    if since:
        query["first_seen"] = {"$gte": since}
    if not include_redriven:
        query["redriven_at"] = {"$exists": False}
    return query


def list_rejected(settings: Settings, reason: str | None = None, since: dt.datetime | None = None,
                  limit: int = 50) -> list[dict[str, Any]]:
    db = mongo_io.get_db(settings)
    return mongo_io.find(db, mongo_io.REJECTED, _query(reason, since), sort=[("first_seen", -1)], limit=limit)


def counts_by_reason(settings: Settings) -> dict[str, int]:
    db = mongo_io.get_db(settings)
    rows = mongo_io.aggregate(db, mongo_io.REJECTED, [{"$group": {"_id": "$reason", "n": {"$sum": 1}}}])
    return {r["_id"]: r["n"] for r in sorted(rows, key=lambda r: -r["n"])}


def redrive(settings: Settings, reason: str, since: dt.datetime | None = None) -> Redrive:
    """Send the original bytes of matching, not yet re-driven records back to TOPIC_RAW."""
    db = mongo_io.get_db(settings)
    matching = mongo_io.find(db, mongo_io.REJECTED, _query(reason, since), projection={"_id": 1, "redriven_at": 1})
    candidates = [d["_id"] for d in matching if "redriven_at" not in d]
    now = dt.datetime.now(dt.UTC)
    claimed = mongo_io.claim_for_redrive(db, candidates, now)
    docs = mongo_io.find(db, mongo_io.REJECTED, {"_id": {"$in": claimed}}) if claimed else []
    messages: list[kafka_io.Message] = [
        (d.get("key"), bytes(d["original"]), [("txnmon.redrive_of", d["_id"].encode())]) for d in docs
    ]
    if messages:
        kafka_io.require_topics(settings, settings.topic_raw)
        producer = kafka_io.make_producer(settings)
        try:
            failed = kafka_io.send_confirmed(producer, settings.topic_raw, messages)
        finally:
            producer.close()
        if failed:
            mongo_io.release_redrive(db, [docs[i]["_id"] for i in failed])
            raise kafka_io.KafkaUnavailable(f"{len(failed)} of {len(messages)} re-driven messages not acknowledged; "
                                            "those records stay re-drivable")
    return Redrive(selected=len(matching), sent=len(messages), already_redriven=len(matching) - len(candidates))
