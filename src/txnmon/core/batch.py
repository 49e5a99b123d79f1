"""One polled batch in, everything to write out: validation, enrichment and rules, no I/O.

`process_batch` is a plain function over plain data so that it can be tested in a few lines;
the processor (src/txnmon/services/processor.py) does the polling, writing and committing around it, and
the window replay (src/txnmon/jobs/window_replay.py) runs the same step over history.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from txnmon.core import fastjson
from txnmon.core.contract import parse_transaction
from txnmon.core.enriched_json import added_is_plain, message_bytes
from txnmon.core.enrichment import enrichment
from txnmon.core.fastjson import json_default as _json_default
from txnmon.core.handoff import Handoff, parse
from txnmon.core.identity import SOURCE_HEADERS, fingerprint_of, origin_of, origin_position
from txnmon.core.identity import content_fingerprint as content_fingerprint  # its callers import it from here
from txnmon.core.records import DUPLICATE_ID_CONFLICT, PROCESSING_ERROR, Message, Rejection, SourceRecord
from txnmon.core.resend import Resent, SinkOutcome, same_event
from txnmon.core.rules import Detector
from txnmon.core.rules.engine import Judgement, alert_document, completed_alerts, owner_of
from txnmon.core.rules.state import event_from
from txnmon.core.scoring import ModelScore, Scorer, scores_of
from txnmon.core.watermark import Watermarks

log = logging.getLogger("txnmon.stream")


@dataclass(frozen=True)
class BatchConfig:
    """What the batch step needs of the settings (built by the caller: the core reads no environment)."""

    zone: ZoneInfo
    max_message_bytes: int
    late_after_seconds: int
    value_medium_threshold: float
    value_high_threshold: float
    dlq_max_bytes: int = 256 * 1024

    @classmethod
    def from_settings(cls, settings: Any) -> BatchConfig:
        return cls(settings.zone, settings.max_message_bytes, settings.late_after_seconds,
                   settings.value_medium_threshold, settings.value_high_threshold, settings.dlq_max_bytes)

# user ids -> their stored state (Detector.export_state documents); the processor reads MongoDB
StateLoader = Callable[[set[str]], Mapping[str, Mapping[str, Any]]]


@dataclass
class BatchResult:
    transactions: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    suppressed: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)  # the DLQ records, for MongoDB
    shadow: list[dict[str, Any]] = field(default_factory=list)
    enriched: list[Message] = field(default_factory=list)
    dlq: list[Message] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    counted_alerts: set[str] = field(default_factory=set)  # alert ids counted (a late arrival may complete one again)
    consumed: int = 0
    late: int = 0
    originals: dict[str, SourceRecord] = field(default_factory=dict)
    watermarks: dict[int, list[dt.datetime]] = field(default_factory=dict)  # touched partitions, after the batch
    # and before it: a redo after a crash (written, not committed) must judge lateness as the first attempt did
    watermarks_before: dict[int, list[dt.datetime]] = field(default_factory=dict)
    withdrawn: list[str] = field(default_factory=list)  # judged, then refused, in conflict or found re-sent
    resent: dict[str, Resent] = field(default_factory=dict)  # transaction id -> a copy judged in an earlier batch
    records: list[SourceRecord] = field(default_factory=list)
    rejected_records: dict[str, SourceRecord] = field(default_factory=dict)  # rejected document id -> its record
    judgements: dict[str, Judgement] = field(default_factory=dict)  # transaction id -> what the rules found
    inserted: int = 0  # from the transactions sink's outcome: new documents, and ones stored before
    existing: int = 0
    unsent: dict[str, list[Message]] = field(default_factory=dict)  # per topic sink, messages not yet acknowledged
    dlq_max_bytes: int = 256 * 1024

    def reject(self, record: SourceRecord, rejection: Rejection, now: dt.datetime, stage: str,
               rules_version: str) -> None:
        self.dlq.append(on_rejected(record, rejection, now, self.dlq_max_bytes))
        self.rejected_by_reason[rejection.reason] += 1
        doc = rejected_document(record, rejection, now, stage, rules_version)
        self.rejected.append(doc)
        self.rejected_records[doc["_id"]] = record

    def add(self, record: SourceRecord, judged: Judged) -> None:
        self.originals[judged.doc["_id"]] = record
        self.judgements[judged.doc["_id"]] = judged.judgement
        self.transactions.append(judged.doc)
        self.enriched.append(judged.enriched)
        self.alerts.extend(judged.alerts)
        self.suppressed.extend(judged.suppressed)
        self.shadow.extend(judged.shadow)
        for alert in judged.alerts:
            if alert["_id"] not in self.counted_alerts:
                self.counted_alerts.add(alert["_id"])
                self.alerts_by_rule[alert["rule"]] += 1
        self.late += judged.late

    def keep_only(self, wanted: Callable[[SourceRecord], bool]) -> None:
        """Drop everything that came from records `wanted` refuses (a replay's look-back)."""
        gone = {tid for tid, record in self.originals.items() if not wanted(record)}
        self.consumed = sum(1 for r in self.records if wanted(r))
        self.alerts, self.suppressed, self.shadow = ([a for a in docs if owner_of(a) not in gone]
                                                     for docs in (self.alerts, self.suppressed, self.shadow))
        # transactions and enriched messages stay in step: a sink may still withdraw a transaction (one found
        # in conflict with its stored copy), and `withdraw` drops its enriched message with it
        self.enriched = [m for m, d in zip(self.enriched, self.transactions, strict=True) if d["_id"] not in gone]
        self.transactions = [d for d in self.transactions if d["_id"] not in gone]
        self.resent = {tid: r for tid, r in self.resent.items() if wanted(r.record)}
        kept = [(doc, msg) for doc, msg in zip(self.rejected, self.dlq, strict=True)
                if doc["_id"] in self.rejected_ids_wanted(wanted)]
        self.rejected = [d for d, _ in kept]
        self.dlq = [m for _, m in kept]

    def rejected_ids_wanted(self, wanted: Callable[[SourceRecord], bool]) -> set[str]:
        return {doc_id for doc_id, record in self.rejected_records.items() if wanted(record)}

    def apply(self, outcome: SinkOutcome | None) -> None:
        """A sink's outcome: withdrawals, the stored-before count of what is left, then re-sends dropped."""
        if outcome is None:
            return
        self.withdraw(outcome.withdraw, outcome.stage)
        if outcome.existing is not None:
            self.existing = outcome.existing + sum(1 for tid in self.resent if tid not in outcome.withdraw)
            self.inserted = len(self.transactions) - outcome.existing
        self._drop(outcome.resent)
        self.withdrawn.extend(outcome.resent)

    def withdraw(self, rejections: Mapping[str, Rejection], stage: str) -> None:
        """Move judged transactions into the DLQ after all (refused by the store, or conflicting with a
        stored copy): their alerts and enriched messages go too, and `withdrawn` lists them so the
        caller can take them out of the detector's history."""
        if not rejections:
            return
        by_id = {d["_id"]: d for d in self.transactions}
        for tid, rejection in rejections.items():
            if tid not in by_id:  # a copy that was not judged (`resent`): only its record goes to the DLQ
                copy = self.resent.pop(tid)
                self.reject(copy.record, rejection, copy.seen_at, stage, copy.rules_version)
                continue
            doc = by_id[tid]
            self.reject(self.originals[tid], rejection, doc["processed_time"], stage, doc["rules_version"])
            self.withdrawn.append(tid)
        self._drop(set(rejections))

    def drop_alerts(self, unwanted: Callable[[dict[str, Any]], bool]) -> None:
        """Take alerts out of the batch (raised, suppressed, shadow): refused ones, or a dropped transaction's."""
        kept = [[a for a in docs if not unwanted(a)] for docs in (self.alerts, self.suppressed, self.shadow)]
        gone = {a["_id"]: a["rule"] for a in self.alerts} | {a["_id"]: None for a in kept[0]}  # counted once per id
        self.alerts_by_rule.subtract(rule for rule in gone.values() if rule is not None)
        self.counted_alerts -= {i for i, rule in gone.items() if rule is not None}
        self.alerts, self.suppressed, self.shadow = kept

    def _drop(self, gone: Set[str]) -> None:
        """Take judged transactions out of the batch, with everything they raised."""
        if not gone:
            return
        self.late -= sum(1 for d in self.transactions if d["_id"] in gone and d.get("late"))
        # a completed alert goes with the late transaction that raised it, or the one it is about
        self.drop_alerts(lambda a: owner_of(a) in gone or a["transaction_id"] in gone)
        self.enriched = [m for m, doc in zip(self.enriched, self.transactions, strict=True) if doc["_id"] not in gone]
        self.transactions = [d for d in self.transactions if d["_id"] not in gone]


class Judged(NamedTuple):
    """One transaction, judged: everything the batch will write for it (a tuple: a dataclass cost µs)."""

    judgement: Judgement
    doc: dict[str, Any]
    alerts: list[dict[str, Any]]
    suppressed: list[dict[str, Any]]
    shadow: list[dict[str, Any]]
    enriched: Message
    late: bool


def _judge(record: SourceRecord, tx: dict[str, Any], fingerprint: str, detector: Detector, config: BatchConfig, *,
           now: dt.datetime, lateness: dt.timedelta, watermark: dt.datetime | None,
           model: ModelScore | None = None, plain: bool | None = None) -> Judged:
    """Rules, enrichment and the documents for one transaction; the detector is not changed yet.
    `plain`: `fastjson.plain(tx)` when the fingerprint has found it out (None: found out here)."""
    late = watermark is not None and tx["event_time"] < watermark - lateness
    judgement = detector.judge(tx, model)
    hits = judgement.hits
    # the fields added to the input, in the stored order: the document is built from them in one copy
    added = enrichment(tx, hits, processed_time=now, medium_threshold=config.value_medium_threshold,
                       high_threshold=config.value_high_threshold)
    added["rules_version"] = detector.version
    added["late"] = late  # stored and counted like any other, and flagged for the rollups
    added["content_hash"] = fingerprint
    if model is not None:  # the score as computed: the backtest's score of it is the same float
        added["model"] = {"version": model.version, "score": model.score}
    source = origin_position(record)
    if source is None:
        added["source"] = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
    else:  # judged from the by-user topic: where in it too (its order is the arrival order)
        added["source"] = {"topic": source[0], "partition": source[1], "offset": source[2]}
        added["judged_at"] = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
    doc = {**tx, **added}  # each value is the input's or an added one: both proven plain, so is the document
    proven = (fastjson.plain(tx) if plain is None else plain) and added_is_plain(added, record)
    alerts, suppressed, shadow = [], [], []
    for hit in hits:
        alert = alert_document(tx, hit, created_at=now, rules_version=detector.version)
        if hit.mode == "shadow":
            shadow.append(alert)
        elif hit.suppressed_by:
            suppressed.append({**alert, "suppressed_by": hit.suppressed_by})
        else:
            alerts.append(alert)
    for alert in completed_alerts(judgement, tx, created_at=now, rules_version=detector.version):
        (shadow if alert["mode"] == "shadow" else suppressed if "suppressed_by" in alert else alerts).append(alert)
    for alert in (*alerts, *suppressed, *shadow) if model is not None else ():
        alert["model_version"] = model.version  # judged with this model in use
    enriched = (tx["user_id"].encode("utf-8"), message_bytes(doc, added, proven), None)
    return Judged(judgement, doc, alerts, suppressed, shadow, enriched, late)


def processing_error(record: SourceRecord, exc: BaseException) -> Rejection:
    log.exception("processing %s failed; sent to the DLQ", record.where)
    return Rejection(PROCESSING_ERROR, f"{type(exc).__name__}: {exc}"[:2000])


def conflict(transaction_id: str) -> Rejection:
    return Rejection(DUPLICATE_ID_CONFLICT,
                     f"transaction {transaction_id!r} was seen before with different content; the first is kept")


@dataclass
class RouteResult:
    """The raw topic's batch, re-keyed: valid messages to forward to the by-user topic, the rest rejected."""

    forward: list[Message] = field(default_factory=list)
    forward_timestamps: list[int] = field(default_factory=list)
    rejects: BatchResult = field(default_factory=BatchResult)


def route_batch(records: Sequence[SourceRecord], config: BatchConfig, *, now: dt.datetime,
                rules_version: str, handoff: Handoff | None = None) -> RouteResult:
    """Validate raw messages and key every valid one by its normalised user id, so each user's
    events meet on one partition of the by-user topic, whatever key (or none) the producer used.

    The forwarded message is the original bytes; its headers say where it arrived. Invalid ones are
    rejected here, once, with their raw position. Valid ones are kept in `handoff`, so judging their
    by-user copies in this process does not parse them again (src/txnmon/core/handoff.py).
    """
    result = RouteResult(rejects=BatchResult(consumed=len(records), dlq_max_bytes=config.dlq_max_bytes))
    for record in records:
        try:
            parsed = parse_transaction(record.value, zone=config.zone, now=now, max_bytes=config.max_message_bytes)
        except Exception as exc:  # the design rule: no single record stops the batch
            parsed = processing_error(record, exc)
        if isinstance(parsed, Rejection):
            result.rejects.reject(record, parsed, now, "validate", rules_version)
            continue
        if handoff is not None:
            handoff.keep(record.value, parsed, zone=config.zone, now=now, max_bytes=config.max_message_bytes)
        headers = [(k, v) for k, v in record.headers if k not in SOURCE_HEADERS]
        headers += [("txnmon.source.topic", record.topic.encode()),
                    ("txnmon.source.partition", str(record.partition).encode()),
                    ("txnmon.source.offset", str(record.offset).encode())]
        result.forward.append((parsed["user_id"].encode("utf-8"), record.value, headers))
        result.forward_timestamps.append(record.timestamp_ms)
    return result


def on_rejected(record: SourceRecord, rejection: Rejection, now: dt.datetime, max_bytes: int = 256 * 1024
                ) -> Message:
    """The DLQ message: the original key and bytes, the why and where in headers.

    A copy longer than `max_bytes` is cut there, with header `txnmon.truncated` giving the original
    length: the topic must accept it. The `rejected` document keeps the whole original.
    """
    log.warning("rejected %s: %s (%s)", record.where, rejection.reason, rejection.detail)
    source = origin_of(record)
    value = record.value
    headers = [
        ("txnmon.reason", rejection.reason.encode()),
        ("txnmon.detail", rejection.detail.encode("utf-8", "replace")[:2000]),
        ("txnmon.source.topic", source.topic.encode()),
        ("txnmon.source.partition", str(source.partition).encode()),
        ("txnmon.source.offset", str(source.offset).encode()),
        ("txnmon.rejected_at", _json_default(now).encode()),
    ]
    if len(value) > max_bytes:
        headers.append(("txnmon.truncated", str(len(value)).encode()))
        value = value[:max_bytes]
    return (record.key, value, headers)


def rejected_document(record: SourceRecord, rejection: Rejection, now: dt.datetime, stage: str,
                      rules_version: str) -> dict[str, Any]:
    """The DLQ record as a document: `_id` is its source position, so redelivery stores it once."""
    source = origin_of(record)
    return {
        "_id": f"{source.topic}:{source.partition}:{source.offset}",
        "reason": rejection.reason,
        "detail": rejection.detail[:2000],
        "stage": stage,
        "source": {"topic": source.topic, "partition": source.partition, "offset": source.offset},
        "key": record.key,
        "original": record.value,
        "first_seen": now,
        "rules_version": rules_version,
    }


def process_batch(
    records: Sequence[SourceRecord],
    detector: Detector,
    config: BatchConfig,
    *,
    now: dt.datetime,
    load_state: StateLoader,
    watermarks: Watermarks | None = None,
    handoff: Handoff | None = None,
    model: Scorer | None = None,
    on_judged: Callable[[Sequence[dict[str, Any]]], None] | None = None,
    judged_every: int = 500,
) -> BatchResult:
    """Validate, detect and enrich a batch; return the documents and messages to write.

    Users the detector has no state for are loaded through `load_state` first, and the state of
    every user the batch touched is returned for storing, so alerts do not depend on which
    process saw a user's earlier transactions. A record whose exact bytes this process validated
    when routing them is taken from `handoff` instead of parsed again. A `model` scores it first.
    `on_judged` is given the documents judged so far every `judged_every` (the processor writes them
    ahead: src/txnmon/pipeline/write_ahead.py); they are final, and still the batch's to write.
    """
    result = BatchResult(consumed=len(records), dlq_max_bytes=config.dlq_max_bytes, records=list(records))
    marks = watermarks if watermarks is not None else Watermarks()
    valid: list[tuple[SourceRecord, dict[str, Any]]] = []
    for record in records:
        if record.partition not in result.next_offsets:  # the partition's first record in this batch
            marks.start(record.partition, record.offset)
            result.watermarks_before.update(marks.export([record.partition]))
        result.next_offsets[record.partition] = max(result.next_offsets.get(record.partition, 0), record.offset + 1)
        try:
            parsed = parse(record.value, handoff, zone=config.zone, now=now, max_bytes=config.max_message_bytes)
        except Exception as exc:  # the design rule: no single record stops the batch
            parsed = processing_error(record, exc)
        if isinstance(parsed, Rejection):
            result.reject(record, parsed, now, "validate", detector.version)
        else:
            valid.append((record, parsed))

    missing = detector.missing_users(tx["user_id"] for _, tx in valid)
    if missing:
        detector.import_state(load_state(missing))
    scores = scores_of(detector, [tx for _, tx in valid], model) or {}

    first_seen: dict[str, str] = {}  # transaction id -> content fingerprint of its first copy in this batch
    lateness = dt.timedelta(seconds=config.late_after_seconds)
    handed = 0  # documents given to `on_judged`
    for record, tx in valid:
        fingerprint, plain = fingerprint_of(tx)
        earlier = first_seen.get(tx["_id"])
        if earlier is not None:
            if earlier != fingerprint:
                result.reject(record, conflict(tx["_id"]), now, "validate", detector.version)
            continue  # an identical copy (a producer retry): stored once, judged once
        kept = detector.recorded(tx)
        if kept is not None:  # judged in an earlier batch: its verdicts stand, the user's state stays
            if same_event(event_from(tx), kept):
                result.resent[tx["_id"]] = Resent(record, fingerprint, now, detector.version)
                first_seen[tx["_id"]] = fingerprint
            else:
                result.reject(record, conflict(tx["_id"]), now, "validate", detector.version)
            continue
        try:
            judged = _judge(record, tx, fingerprint, detector, config, now=now, lateness=lateness,
                            watermark=marks.of(record.partition), model=scores.get(tx["transaction_id"]), plain=plain)
        except Exception as exc:  # the design rule: no single record stops the batch
            result.reject(record, processing_error(record, exc), now, "process", detector.version)
            continue
        detector.record(judged.judgement)
        marks.observe(record.partition, tx["event_time"])
        first_seen[tx["_id"]] = fingerprint
        result.add(record, judged)
        if on_judged is not None and len(result.transactions) - handed >= judged_every:
            on_judged(result.transactions[handed:])
            handed = len(result.transactions)
    result.watermarks = marks.export(result.next_offsets)
    detector.state.watermark = marks.overall()  # user eviction goes by the robust watermark too
    detector.end_batch()
    return result
