"""Writing one processed batch: DLQ, MongoDB, enriched topic, each retried until acknowledged.

Nothing here commits offsets: the processor commits only after `write_batch` returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from include import kafka_io, mongo_io
from streaming.metrics import ProcessorMetrics
from streaming.pipeline import BatchResult

log = logging.getLogger("txnmon.stream")
T = TypeVar("T")

MAX_BACKOFF_S = 10.0


class StopRequested(RuntimeError):
    """Shutdown was asked for while a write kept failing: leave the batch uncommitted."""


class DeliveryFailed(RuntimeError):
    pass


def with_retry(
    action: Callable[[], T],
    *,
    sink: str,
    retryable: tuple[type[BaseException], ...],
    should_stop: Callable[[], bool],
    metrics: ProcessorMetrics,
) -> T:
    """Run `action` until it succeeds, backing off 0.5 s .. 10 s; never gives up on its own."""
    delay = 0.5
    attempt = 1
    while True:
        try:
            return action()
        except retryable as exc:
            metrics.retries.labels(sink).inc()
            if should_stop():
                raise StopRequested(f"{sink} still failing at shutdown: {exc}") from exc
            log.warning("%s unavailable (attempt %d): %s; retrying the batch in %.1fs",
                        sink, attempt, str(exc).split("\n")[0][:300], delay,
                        extra={"sink": sink, "attempt": attempt})
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
            attempt += 1


def _produce_all(producer: Any, topic: str, messages: list[kafka_io.Message]) -> None:
    pending = messages
    failed = kafka_io.send_confirmed(producer, topic, pending)
    if failed:
        # keep only the unacknowledged ones for the retry; the rest are already on the topic
        messages[:] = [pending[i] for i in failed]
        raise DeliveryFailed(f"{len(failed)} of {len(pending)} messages to {topic} not acknowledged")


MONGO_RETRYABLE = mongo_io.RETRYABLE_ERRORS
KAFKA_RETRYABLE = (DeliveryFailed, kafka_io.KafkaError)


def _store_transactions(db: Any, result: BatchResult) -> mongo_io.UpsertResult:
    """Upsert the batch's transactions. A document the server refuses for good (not a race or an
    outage) moves to the DLQ with reason `store_failed` instead of blocking the partition."""
    docs = result.transactions
    try:
        return mongo_io.upsert_transactions(db, docs)
    except mongo_io.mongo_errors.BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        refused = [e for e in errors if e.get("code") != mongo_io.DUPLICATE_KEY]
        for err in refused:
            doc = docs[err["index"]]
            log.error("MongoDB refused transaction %s from %s: %s", doc["_id"], doc.get("source"), err.get("errmsg"))
            result.store_failed.append((doc, str(err.get("errmsg", ""))[:500]))
        done = len(docs) - len(errors)
        return mongo_io.UpsertResult(inserted=done, existing=len(docs) - done - len(refused))


def write_batch(
    result: BatchResult,
    *,
    db: Any,
    producer: Any,
    topic_enriched: str,
    topic_dlq: str,
    should_stop: Callable[[], bool],
    metrics: ProcessorMetrics,
) -> tuple[int, int]:
    """Write everything a batch produced; return (transactions inserted, already stored)."""
    stored = with_retry(lambda: _store_transactions(db, result), sink="mongodb",
                        retryable=MONGO_RETRYABLE, should_stop=should_stop, metrics=metrics)
    if result.store_failed:
        result.reject_unstorable()
    if result.rejected:
        with_retry(lambda: mongo_io.insert_missing(db[mongo_io.REJECTED], result.rejected), sink="mongodb",
                   retryable=MONGO_RETRYABLE, should_stop=should_stop, metrics=metrics)
    if result.dlq:
        dlq = list(result.dlq)
        with_retry(lambda: _produce_all(producer, topic_dlq, dlq), sink="kafka-dlq",
                   retryable=KAFKA_RETRYABLE, should_stop=should_stop, metrics=metrics)
    for collection, docs in ((mongo_io.ALERTS, result.alerts), (mongo_io.SUPPRESSED_ALERTS, result.suppressed),
                             (mongo_io.SHADOW_ALERTS, result.shadow)):
        if docs:
            with_retry(lambda c=collection, d=docs: mongo_io.insert_missing(db[c], d), sink="mongodb",
                       retryable=MONGO_RETRYABLE, should_stop=should_stop, metrics=metrics)
    if result.user_state:
        with_retry(lambda: mongo_io.save_user_state(db, result.user_state), sink="mongodb",
                   retryable=MONGO_RETRYABLE, should_stop=should_stop, metrics=metrics)
    if result.enriched:
        enriched = list(result.enriched)
        with_retry(lambda: _produce_all(producer, topic_enriched, enriched), sink="kafka-enriched",
                   retryable=KAFKA_RETRYABLE, should_stop=should_stop, metrics=metrics)
    return stored.inserted, stored.existing
