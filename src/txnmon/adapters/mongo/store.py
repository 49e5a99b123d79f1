"""`MongoStore`: the txnmon database on one MongoDB deployment, as generic operations over plain dicts.

The shape of Airflow's MongoHook: `MongoStore(settings)` uses the process's shared client from the
first call on (constructing one connects nowhere), makes one client call per method, and raises only
`StoreUnavailable` (retryable) or `StoreRefused`. It knows collections, not what is in them: the
writes are idempotent (`insert_missing`, replaces and upserts by `_id`) so a batch can be retried or
redelivered by Kafka without creating a second document, and the reads take a query. The operations
that know a collection's meaning (cases, lists, the outbox, leases, re-drive claims, watermarks) are
the repositories beside this module, each built on a store.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import bson
from bson import errors as bson_errors
from bson.raw_bson import RawBSONDocument
from pymongo import DeleteOne, ReplaceOne, ReturnDocument
from pymongo import errors as mongo_errors
from pymongo.collection import Collection
from pymongo.database import Database

from txnmon.adapters.mongo import indexes
from txnmon.adapters.mongo.client import (
    DUPLICATE_KEY,
    bulk_error,
    close_shared_client,
    first_line,
    shared_client,
    translated,
)
from txnmon.errors import StoreRefused, StoreUnavailable
from txnmon.settings import Settings

# MongoDB's limit on one document (maxBsonObjectSize); checked here, before sending, because a
# MongoDB-wire server answers an oversized document by closing the connection.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024


def encoded_or_refused(docs: Sequence[Mapping[str, Any]],
                       indexes: Iterable[int]) -> tuple[dict[int, bytes], dict[int, str]]:
    """The BSON of each document of `docs` at `indexes` (index -> bytes), and index -> why for those that
    cannot be sent: not encodable as BSON, or larger than MAX_DOCUMENT_BYTES. Encodes each once (about
    20 µs for a transaction); the bytes are what is sent, so the driver does not encode it again."""
    good: dict[int, bytes] = {}
    bad: dict[int, str] = {}
    for i in indexes:
        try:
            doc = docs[i]
            raw = bson.encode(doc if type(doc) is dict else dict(doc))
        except (bson_errors.BSONError, OverflowError, ValueError, TypeError) as why:
            bad[i] = f"not storable: {type(why).__name__}: {why}"[:500]
            continue
        if len(raw) > MAX_DOCUMENT_BYTES:
            bad[i] = f"not storable: document of {len(raw)} bytes, MongoDB's limit is {MAX_DOCUMENT_BYTES}"
        else:
            good[i] = raw
    return good, bad


@dataclass(frozen=True)
class UpsertResult:
    inserted: int
    existing: int
    duplicate_ids: list[Any] = field(default_factory=list)  # ids that were stored already


class MongoStore:
    """The txnmon database on one MongoDB deployment, as generic operations over plain dicts."""

    # documents written (inserted, replaced, upserted) by this process, per collection: what
    # `make bench` reports as MongoDB writes per transaction
    written: ClassVar[Counter[str]] = Counter()

    def __init__(self, settings: Settings, database: str | None = None) -> None:
        self.settings = settings
        self.database = database or settings.mongo_db

    # --- lifecycle -------------------------------------------------------------------------

    @property
    def db(self) -> Database:
        """Built on first use, so constructing a store (e.g. in a DAG file) makes no connection."""
        return shared_client(self.settings)[self.database]

    def close(self) -> None:
        """Close this process's pooled client for the deployment (at process exit; a later call reconnects)."""
        close_shared_client(self.settings)

    def collection(self, name: str) -> Collection:
        """The raw collection, for benchmarks and tests that measure the server itself."""
        return self.db[name]

    # --- server and schema ------------------------------------------------------------------

    @translated
    def ping(self) -> dict[str, Any]:
        """Server version and wire version."""
        hello = self.db.client.admin.command("isMaster")
        info = self.db.client.server_info()
        return {"version": info.get("version"), "maxWireVersion": hello.get("maxWireVersion")}

    @translated
    def ensure_indexes(self) -> None:
        """Indexes the processor, rollups and dashboard rely on (listed in `indexes`); creating them
        twice is a no-op."""
        indexes.ensure_indexes(self.db)

    @translated
    def drop(self) -> None:
        """Delete this database (tests and benchmarks only)."""
        self.db.client.drop_database(self.database)

    # --- writes ---------------------------------------------------------------------------------

    @translated
    def insert_missing(self, collection: str, docs: Sequence[Mapping[str, Any]]) -> UpsertResult:
        """Insert each document whose `_id` is not stored yet; leave stored ones exactly as they are.

        An unordered `insert_many`: duplicate-key errors mean "already stored" (a redelivery or a
        replay), so the first write of an id wins and writing a batch twice changes nothing. A
        document refused for another reason raises StoreRefused naming its index in `docs`.
        """
        if not docs:
            return UpsertResult(0, 0)
        first: dict[Any, int] = {}
        for i, d in enumerate(docs):
            first.setdefault(d["_id"], i)
        unique = list(first.values())
        kept = set(unique)
        repeated = [docs[i]["_id"] for i in range(len(docs)) if i not in kept]
        raw, bad = encoded_or_refused(docs, unique)
        if bad:
            # nothing of these is sent (a MongoDB-wire server drops the connection on an oversized one,
            # which would look like an outage for ever): insert the others, name the bad ones
            rest_at = [i for i in unique if i not in bad]  # index in `rest` -> index in `docs`
            try:
                done = self.insert_missing(collection, [docs[i] for i in rest_at]) if rest_at else UpsertResult(0, 0)
            except StoreRefused as also:  # the server refused some of the rest too: name all, by index in docs
                refused = {**bad, **{rest_at[i]: why for i, why in also.refused.items()}}
                raise StoreRefused(f"{len(refused)} document(s) refused", refused,
                                   duplicate_ids=repeated + also.duplicate_ids) from also
            raise StoreRefused(f"{len(bad)} document(s) not storable", bad,
                               duplicate_ids=repeated + done.duplicate_ids)
        MongoStore.written[collection] += len(unique)
        try:
            # the bytes encoded above (the same bytes the driver would encode: `_id` first, at the top level)
            self.db[collection].insert_many([RawBSONDocument(raw[i]) for i in unique], ordered=False)
            # every one was inserted (no error): the driver lists no ids for raw documents
            return UpsertResult(len(unique), len(docs) - len(unique), repeated)
        except mongo_errors.BulkWriteError as exc:
            error = bulk_error(exc)
            if isinstance(error, StoreUnavailable):
                raise error from exc
            # counted from the errors: some MongoDB-wire servers report nInserted as attempted
            dup_ids = repeated + [docs[unique[e["index"]]]["_id"] for e in exc.details.get("writeErrors", [])
                                  if e.get("code") == DUPLICATE_KEY]
            if error.refused:
                error.refused = {unique[i]: why for i, why in error.refused.items()}
                error.duplicate_ids = dup_ids
                raise error from exc
            inserted = len(unique) - len(exc.details.get("writeErrors", []))
            return UpsertResult(inserted, len(docs) - inserted, dup_ids)

    @translated
    def replace_document(self, collection: str, doc: Mapping[str, Any]) -> None:
        """Store `doc` under its `_id`, replacing any earlier version (reports, dispositions)."""
        MongoStore.written[collection] += 1
        self.db[collection].replace_one({"_id": doc["_id"]}, dict(doc), upsert=True)

    @translated
    def append_to_history(self, collection: str, _id: Any, fields: Mapping[str, Any],
                          entry: Mapping[str, Any]) -> dict[str, Any]:
        """Set `fields` and append `entry` to `history` in one atomic update (upserting); return the document."""
        return self.db[collection].find_one_and_update(
            {"_id": _id}, {"$set": dict(fields), "$push": {"history": dict(entry)}}, upsert=True,
            return_document=ReturnDocument.AFTER)

    # --- reads ---------------------------------------------------------------------------------

    @translated
    def estimated_count(self, collection: str) -> int:
        """Document count from collection metadata: no scan (for progress displays and benchmarks)."""
        return self.db[collection].estimated_document_count()

    @translated
    def count(self, collection: str, query: Mapping[str, Any] | None = None) -> int:
        return self.db[collection].count_documents(dict(query or {}))

    @translated
    def find(
        self,
        collection: str,
        query: Mapping[str, Any] | None = None,
        *,
        sort: Iterable[tuple[str, int]] | None = None,
        limit: int = 0,
        projection: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        cursor = self.db[collection].find(dict(query or {}), dict(projection) if projection else None)
        if sort:
            cursor = cursor.sort(list(sort))
        if limit:
            cursor = cursor.limit(limit)
        return list(cursor)

    def find_one(self, collection: str, query: Mapping[str, Any]) -> dict[str, Any] | None:
        found = self.find(collection, query, limit=1)
        return found[0] if found else None

    @translated
    def aggregate(self, collection: str, pipeline: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        try:
            return list(self.db[collection].aggregate([dict(stage) for stage in pipeline], allowDiskUse=True))
        except mongo_errors.OperationFailure as exc:
            if exc.code == DUPLICATE_KEY:
                # two $merge runs inserting the same new _id at once: MongoDB says retry the merge
                raise StoreUnavailable(f"concurrent $merge: {first_line(exc)}") from exc
            raise

    # --- KPI rollups ------------------------------------------------------------------------------

    @translated
    def for_each(self, collection: str, query: Mapping[str, Any], projection: Mapping[str, Any],
                 visit: Callable[[dict[str, Any]], None], *, batch_size: int = 10_000) -> int:
        """Stream the matching documents through `visit`, one cursor, never all in memory; return how many.

        A helper thread reads the cursor (a few batches ahead) while `visit` runs in the caller's thread,
        so the server preparing the next batch overlaps with the caller's work (measured on the local
        server: a million documents folded in 27.5 s instead of 29.9 s). An error on either side stops both.
        """
        chunks: queue.Queue[Any] = queue.Queue(maxsize=4)
        stop = threading.Event()
        end = object()

        def offer(item: Any) -> bool:
            while not stop.is_set():
                try:
                    chunks.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                with self.db[collection].find(dict(query), dict(projection), batch_size=batch_size) as cursor:
                    chunk: list[dict[str, Any]] = []
                    for doc in cursor:
                        chunk.append(doc)
                        if len(chunk) >= batch_size:
                            if not offer(chunk):
                                return
                            chunk = []
                    if chunk and not offer(chunk):
                        return
                offer(end)
            except BaseException as exc:  # handed to the caller's thread, translated there
                offer(exc)

        reader = threading.Thread(target=read, name=f"txnmon-read-{collection}", daemon=True)
        reader.start()
        n = 0
        try:
            while (chunk := chunks.get()) is not end:
                if isinstance(chunk, BaseException):
                    raise chunk
                for doc in chunk:
                    visit(doc)
                n += len(chunk)
            return n
        finally:
            stop.set()
            reader.join(timeout=60)

    @translated
    def write_documents(self, collection: str, replace: Sequence[Mapping[str, Any]],
                        delete_ids: Sequence[Any] = ()) -> dict[str, int]:
        """Store each of `replace` under its `_id` (inserting or replacing) and delete `delete_ids`, in one
        unordered bulk write; idempotent, so a retry after an outage gives the same result."""
        ops: list[Any] = [ReplaceOne({"_id": d["_id"]}, dict(d), upsert=True) for d in replace]
        ops += [DeleteOne({"_id": i}) for i in delete_ids]
        if not ops:
            return {"upserted": 0, "replaced": 0, "deleted": 0}
        result = self.db[collection].bulk_write(ops, ordered=False)
        return {"upserted": result.upserted_count, "replaced": result.matched_count,
                "deleted": result.deleted_count}

    @translated
    def set_fields(self, collection: str, ids: Sequence[Any], fields: Mapping[str, Any],
                   only_if: Mapping[str, Any] | None = None) -> int:
        """Set `fields` on the documents with these `_id`s (and matching `only_if`); return how many matched."""
        if not ids:
            return 0
        result = self.db[collection].update_many({"_id": {"$in": list(ids)}, **dict(only_if or {})},
                                                 {"$set": dict(fields)})
        return result.matched_count
