"""One polled batch in, everything to write out: validation, enrichment and rules, no I/O.

`process_batch` is a plain function over plain data so that it can be tested in a few lines;
the processor (streaming/processor.py) does the polling, writing and committing around it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from include.config import Settings
from include.enrichment import enrich
from include.kafka_io import Message, SourceRecord
from include.rules import Detector, alert_document
from include.schema import Rejection, parse_transaction

log = logging.getLogger("txnmon.stream")
STORE_FAILED = "store_failed"

# user ids -> their stored state (Detector.export_state documents); the processor reads MongoDB
StateLoader = Callable[[set[str]], Mapping[str, Mapping[str, Any]]]


@dataclass
class BatchResult:
    transactions: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    suppressed: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # the DLQ records, for MongoDB
    user_state: dict[str, dict[str, Any]] = field(default_factory=dict)  # touched users, after the batch
    shadow: list[dict[str, Any]] = field(default_factory=list)
    enriched: list[Message] = field(default_factory=list)
    dlq: list[Message] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    consumed: int = 0
    late: int = 0
    originals: dict[str, SourceRecord] = field(default_factory=dict)
    store_failed: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    def reject(self, record: SourceRecord, rejection: Rejection, now: dt.datetime, stage: str,
               rules_version: str) -> None:
        self.dlq.append(on_rejected(record, rejection, now))
        self.rejected_by_reason[rejection.reason] += 1
        self.rejected.append(rejected_document(record, rejection, now, stage, rules_version))

    def reject_unstorable(self) -> None:
        """Move transactions MongoDB refused into the DLQ (with their original bytes)."""
        gone = set()
        for doc, why in self.store_failed:
            record = self.originals[doc["_id"]]
            self.reject(record, Rejection(STORE_FAILED, why), doc["processed_time"], "store", doc["rules_version"])
            gone.add(doc["_id"])
        self.alerts = [a for a in self.alerts if a["transaction_id"] not in gone]
        self.suppressed = [a for a in self.suppressed if a["transaction_id"] not in gone]
        self.shadow = [a for a in self.shadow if a["transaction_id"] not in gone]
        self.enriched = [m for m, doc in zip(self.enriched, self.transactions, strict=True) if doc["_id"] not in gone]
        self.transactions = [d for d in self.transactions if d["_id"] not in gone]
        self.store_failed = []


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json_bytes(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, default=_json_default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def on_rejected(record: SourceRecord, rejection: Rejection, now: dt.datetime) -> Message:
    """The DLQ message: the original key and bytes untouched, the why and where in headers."""
    log.warning("rejected %s: %s (%s)", record.where, rejection.reason, rejection.detail)
    headers = [
        ("txnmon.reason", rejection.reason.encode()),
        ("txnmon.detail", rejection.detail.encode("utf-8", "replace")[:2000]),
        ("txnmon.source.topic", record.topic.encode()),
        ("txnmon.source.partition", str(record.partition).encode()),
        ("txnmon.source.offset", str(record.offset).encode()),
        ("txnmon.rejected_at", _json_default(now).encode()),
    ]
    return (record.key, record.value, headers)


def rejected_document(record: SourceRecord, rejection: Rejection, now: dt.datetime, stage: str,
                      rules_version: str) -> dict[str, Any]:
    """The DLQ record as a document: `_id` is its source position, so redelivery stores it once."""
    return {
        "_id": f"{record.topic}:{record.partition}:{record.offset}",
        "reason": rejection.reason,
        "detail": rejection.detail[:2000],
        "stage": stage,
        "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset},
        "key": record.key,
        "original": record.value,
        "first_seen": now,
        "rules_version": rules_version,
    }


def process_batch(
    records: Sequence[SourceRecord],
    detector: Detector,
    settings: Settings,
    *,
    now: dt.datetime,
    load_state: StateLoader,
) -> BatchResult:
    """Validate, detect and enrich a batch; return the documents and messages to write.

    Users the detector has no state for are loaded through `load_state` first, and the state of
    every user the batch touched is returned for storing, so alerts do not depend on which
    process saw a user's earlier transactions.
    """
    result = BatchResult(consumed=len(records))
    zone = settings.zone
    valid: list[tuple[SourceRecord, dict[str, Any]]] = []
    for record in records:
        result.next_offsets[record.partition] = max(result.next_offsets.get(record.partition, 0), record.offset + 1)
        parsed = parse_transaction(record.value, zone=zone, now=now, max_bytes=settings.max_message_bytes)
        if isinstance(parsed, Rejection):
            result.reject(record, parsed, now, "validate", detector.version)
        else:
            valid.append((record, parsed))

    missing = detector.missing_users(tx["user_id"] for _, tx in valid)
    if missing:
        detector.import_state(load_state(missing))

    seen: set[str] = set()
    lateness = dt.timedelta(seconds=settings.late_after_seconds)
    for record, tx in valid:
        watermark = detector.state.watermark
        late = watermark is not None and tx["event_time"] < watermark - lateness
        hits = detector.observe(tx)
        doc = enrich(tx, hits, processed_time=now, medium_threshold=settings.value_medium_threshold,
                     high_threshold=settings.value_high_threshold)
        doc["rules_version"] = detector.version
        doc["late"] = late  # stored and counted like any other, and flagged for the rollups
        if late:
            result.late += 1
        doc["source"] = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
        for hit in hits:
            alert = alert_document(tx, hit, created_at=now, rules_version=detector.version)
            if hit.mode == "shadow":
                result.shadow.append(alert)
            elif hit.suppressed_by:
                result.suppressed.append({**alert, "suppressed_by": hit.suppressed_by})
            else:
                result.alerts.append(alert)
                result.alerts_by_rule[hit.rule] += 1
        if tx["_id"] in seen:
            continue  # the same transaction twice in one batch: the first one is stored
        seen.add(tx["_id"])
        result.originals[tx["_id"]] = record
        result.transactions.append(doc)
        result.enriched.append((tx["user_id"].encode("utf-8"), to_json_bytes(doc), None))
    result.user_state = detector.export_state({tx["user_id"] for _, tx in valid})
    for state in result.user_state.values():
        state["updated_at"] = now
    detector.end_batch()
    return result
