"""Rejected events as data: list them, and send chosen ones back through the pipeline after a fix.

Every DLQ record is also a document in the `rejected` collection (reason, stage, source
position, first seen, original bytes, rules version). A re-drive claims each record, sends it,
and marks it re-driven once Kafka acknowledged it: a second re-drive of it does nothing, and an
interrupted one leaves it re-drivable.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore, RedriveRepository
from txnmon.core.collection_names import REJECTED
from txnmon.core.records import Message
from txnmon.errors import KafkaUnavailable
from txnmon.jobs import audit
from txnmon.settings import Settings

REDRIVE_LEASE = dt.timedelta(minutes=5)  # a claim older than this belonged to a run that died


@dataclass(frozen=True)
class Redrive:
    selected: int
    sent: int
    already_redriven: int
    claimed_elsewhere: int = 0  # claimed by another run still within its lease


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
    store = MongoStore(settings)
    return store.find(REJECTED, _query(reason, since), sort=[("first_seen", -1)], limit=limit)


def counts_by_reason(settings: Settings) -> dict[str, int]:
    store = MongoStore(settings)
    rows = store.aggregate(REJECTED, [{"$group": {"_id": "$reason", "n": {"$sum": 1}}}])
    return {r["_id"]: r["n"] for r in sorted(rows, key=lambda r: -r["n"])}


def source_topic(settings: Settings, doc: dict[str, Any]) -> str:
    """The topic a rejected record goes back to: the event topic it was read from (a cart, stock or
    review event), else TOPIC_RAW (a transaction, including one rejected after re-keying, whose
    `source` is its raw position)."""
    topic = (doc.get("source") or {}).get("topic")
    return topic if topic in settings.event_topics else settings.topic_raw


def redrive(settings: Settings, reason: str, since: dt.datetime | None = None, *, force: bool = False,
            lease: dt.timedelta = REDRIVE_LEASE, by: str | None = None) -> Redrive:
    """Send the original bytes of matching, not yet re-driven records back to their source topic
    (`source_topic`: an event topic, or TOPIC_RAW), once each.

    Each record is claimed (a token with a lease) before it is sent and marked re-driven only once
    Kafka acknowledged it; a run interrupted at any point leaves every record either sent and
    marked, or re-drivable (unclaimed, or its claim's lease over). `force` also sends records marked
    re-driven before, or claimed by another run (an operator who knows those messages were lost).
    """
    store = MongoStore(settings)
    matching = store.find(REJECTED, _query(reason, since), projection={"_id": 1, "redriven_at": 1})
    candidates = [d["_id"] for d in matching if force or "redriven_at" not in d]
    now = dt.datetime.now(dt.UTC)
    token = uuid.uuid4().hex
    RedriveRepository(store).claim(candidates, token, now, stale_before=now - lease, force=force)
    docs = store.find(REJECTED, {"redrive_claim.token": token}) if candidates else []
    busy = len(candidates) - len(docs)
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for d in docs:
        by_topic.setdefault(source_topic(settings, d), []).append(d)
    failed_ids: set[str] = set()
    done: list[str] = []  # acknowledged by Kafka, topic by topic
    if docs:
        try:
            kafka.require_topics(settings, *sorted(by_topic))
            producer = kafka.make_producer(settings)
            try:
                for topic, chosen in sorted(by_topic.items()):
                    messages: list[Message] = [
                        (d.get("key"), bytes(d["original"]), [("txnmon.redrive_of", d["_id"].encode())])
                        for d in chosen]
                    failed = {chosen[i]["_id"] for i in kafka.send_confirmed(producer, topic, messages)}
                    failed_ids |= failed
                    done += [d["_id"] for d in chosen if d["_id"] not in failed]
            finally:
                producer.close()
        except BaseException:
            # a later topic's send failed: what earlier ones delivered is re-driven, the rest stays re-drivable
            RedriveRepository(store).mark_redriven(token, done, dt.datetime.now(dt.UTC))
            RedriveRepository(store).release(token, [d["_id"] for d in docs if d["_id"] not in set(done)])
            raise
        sent_ids = [d["_id"] for d in docs if d["_id"] not in failed_ids]
        RedriveRepository(store).mark_redriven(token, sent_ids, dt.datetime.now(dt.UTC))
        if sent_ids:  # one audit entry per re-drive that sent something
            audit.record(store, "dlq.redrive", by=audit.who(by), target=f"rejected:{reason}", before=None,
                         after={"sent": len(sent_ids), "ids": sent_ids[:1000]},
                         detail={"reason": reason, "since": since, "force": force, "token": token})
        if failed_ids:
            RedriveRepository(store).release(token, sorted(failed_ids))
            raise KafkaUnavailable(f"{len(failed_ids)} of {len(docs)} re-driven messages not acknowledged; "
                                   "those records stay re-drivable")
    return Redrive(selected=len(matching), sent=len(docs),
                   already_redriven=len(matching) - len(candidates), claimed_elsewhere=busy)
