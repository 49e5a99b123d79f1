"""Every MongoDB call txnmon makes, behind a handful of named operations.

Nothing else imports pymongo's client: the processor, the DAGs, the dashboard and the CLI call
these functions with plain dicts. Writes are idempotent unordered bulk upserts, so a batch can
be retried, or redelivered by Kafka, without creating a second document.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient, UpdateOne
from pymongo import errors as mongo_errors
from pymongo.collection import Collection
from pymongo.database import Database

from include.config import Settings

TRANSACTIONS = "transactions"
ALERTS = "alerts"
QUALITY_REPORTS = "quality_reports"
SUPPRESSED_ALERTS = "suppressed_alerts"  # repeats folded into an earlier alert (suppress_for)
SHADOW_ALERTS = "shadow_alerts"  # hits of rules in mode: shadow, never raised
REJECTED = "rejected"  # every DLQ record, queryable and re-drivable (`txnmon dlq`)
USER_STATE = "user_state"  # per user: recent events and latest alerts, so any process can resume a user
DUPLICATE_KEY = 11000

# Errors worth retrying the whole batch for: the server is away, or answered "not now".
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    mongo_errors.AutoReconnect,
    mongo_errors.ConnectionFailure,
    mongo_errors.ServerSelectionTimeoutError,
    mongo_errors.NetworkTimeout,
    mongo_errors.ExecutionTimeout,
    mongo_errors.WTimeoutError,
)
PyMongoError = mongo_errors.PyMongoError


class MongoUnavailable(RuntimeError):
    """The MongoDB server could not be reached; retry later."""


@functools.cache
def _client(uri: str, username: str | None, password: str | None, timeout_ms: int) -> MongoClient:
    kwargs: dict[str, Any] = {
        "serverSelectionTimeoutMS": timeout_ms,
        # the connect timeout is also the monitor's heartbeat timeout: a busy server that is slow
        # to answer a heartbeat must not be declared down (that cancels in-flight batches)
        "connectTimeoutMS": max(timeout_ms, 20_000),
        "socketTimeoutMS": max(timeout_ms * 6, 30_000),
        "tz_aware": True,
        "appname": "txnmon",
    }
    if username is not None:
        kwargs.update(username=username, password=password)
    return MongoClient(uri, **kwargs)


def get_client(settings: Settings) -> MongoClient:
    """One pooled client per (URI, credentials); pymongo clients are thread-safe and reconnect."""
    password = settings.mongo_password.get_secret_value() if settings.mongo_password else None
    return _client(settings.mongo_uri.get_secret_value(), settings.mongo_username, password,
                   settings.mongo_timeout_ms)


def get_db(settings: Settings, name: str | None = None) -> Database:
    return get_client(settings)[name or settings.mongo_db]


def ping(db: Database) -> dict[str, Any]:
    """Server version and wire version; raises MongoUnavailable if the server does not answer."""
    try:
        info = db.client.server_info()
        hello = db.client.admin.command("isMaster")
    except mongo_errors.PyMongoError as exc:
        raise MongoUnavailable(str(exc).split(",")[0]) from exc
    return {"version": info.get("version"), "maxWireVersion": hello.get("maxWireVersion")}


def ensure_indexes(db: Database) -> None:
    """Indexes the processor, rollups and dashboard rely on; creating them twice is a no-op.

    Transactions and alerts use their natural ids as `_id`, so uniqueness needs no extra index.
    """
    tx = db[TRANSACTIONS]
    tx.create_index([("user_id", ASCENDING), ("event_time", DESCENDING)], name="user_recent")
    tx.create_index([("event_time", ASCENDING)], name="event_time")
    tx.create_index([("processed_time", ASCENDING)], name="processed_time")
    alerts = db[ALERTS]
    alerts.create_index([("created_at", DESCENDING)], name="created_at")
    alerts.create_index([("rule", ASCENDING), ("event_time", ASCENDING)], name="rule_event_time")
    alerts.create_index([("user_id", ASCENDING), ("event_time", DESCENDING)], name="user_recent")
    db[REJECTED].create_index([("reason", ASCENDING), ("first_seen", ASCENDING)], name="reason_first_seen")
    for name in (SUPPRESSED_ALERTS, SHADOW_ALERTS):
        db[name].create_index([("rule", ASCENDING), ("event_time", ASCENDING)], name="rule_event_time")


@dataclass(frozen=True)
class UpsertResult:
    inserted: int
    existing: int


def insert_missing(collection: Collection, docs: Sequence[Mapping[str, Any]]) -> UpsertResult:
    """Insert each document whose `_id` is not stored yet; leave stored ones exactly as they are.

    An unordered `insert_many`: duplicate-key errors mean "already stored" (a redelivery or a
    replay), so the first write of an id wins and writing a batch twice changes nothing. Any
    other write error is raised (as BulkWriteError) for the caller to handle.
    """
    if not docs:
        return UpsertResult(0, 0)
    first: dict[Any, Mapping[str, Any]] = {}
    for d in docs:
        first.setdefault(d["_id"], d)
    try:
        result = collection.insert_many([dict(d) for d in first.values()], ordered=False)
        inserted = len(result.inserted_ids)
    except mongo_errors.BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        # counted from the errors: some MongoDB-wire servers report nInserted as attempted
        inserted = len(first) - len(errors)
    return UpsertResult(inserted=inserted, existing=len(docs) - inserted)


def upsert_transactions(db: Database, docs: Sequence[Mapping[str, Any]]) -> UpsertResult:
    return insert_missing(db[TRANSACTIONS], docs)


def upsert_alerts(db: Database, docs: Sequence[Mapping[str, Any]]) -> UpsertResult:
    return insert_missing(db[ALERTS], docs)


def replace_document(db: Database, collection: str, doc: Mapping[str, Any]) -> None:
    """Store `doc` under its `_id`, replacing any earlier version (reports, dispositions)."""
    db[collection].replace_one({"_id": doc["_id"]}, dict(doc), upsert=True)


def load_user_state(db: Database, user_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The stored state of these users (by `_id`, so one indexed lookup on any MongoDB)."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    return {d["_id"]: d for d in db[USER_STATE].find({"_id": {"$in": ids}})}


def save_user_state(db: Database, states: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace the state of these users; writing the same state twice is harmless."""
    if states:
        ops = [UpdateOne({"_id": u}, {"$set": dict(state)}, upsert=True) for u, state in states.items()]
        db[USER_STATE].bulk_write(ops, ordered=False)


def claim_for_redrive(db: Database, ids: Sequence[str], at: Any) -> list[str]:
    """Mark rejected records as re-driven; return only the ids this call marked (never twice)."""
    claimed = []
    for _id in ids:
        result = db[REJECTED].update_one({"_id": _id, "redriven_at": {"$exists": False}}, {"$set": {"redriven_at": at}})
        if result.modified_count:
            claimed.append(_id)
    return claimed


def release_redrive(db: Database, ids: Sequence[str]) -> None:
    """Undo a claim whose messages could not be sent."""
    if ids:
        db[REJECTED].update_many({"_id": {"$in": list(ids)}}, {"$unset": {"redriven_at": ""}})


def estimated_count(db: Database, collection: str) -> int:
    """Document count from collection metadata: no scan (for progress displays and benchmarks)."""
    return db[collection].estimated_document_count()


def count(db: Database, collection: str, query: Mapping[str, Any] | None = None) -> int:
    return db[collection].count_documents(dict(query or {}))


def find(
    db: Database,
    collection: str,
    query: Mapping[str, Any] | None = None,
    *,
    sort: Iterable[tuple[str, int]] | None = None,
    limit: int = 0,
    projection: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    cursor = db[collection].find(dict(query or {}), dict(projection) if projection else None)
    if sort:
        cursor = cursor.sort(list(sort))
    if limit:
        cursor = cursor.limit(limit)
    return list(cursor)


def aggregate(db: Database, collection: str, pipeline: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return list(db[collection].aggregate([dict(stage) for stage in pipeline], allowDiskUse=True))


def drop_database(settings: Settings, name: str) -> None:
    get_client(settings).drop_database(name)
