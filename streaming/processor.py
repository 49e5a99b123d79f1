"""`txnmon stream`: the long-running consumer-group member.

poll -> process_batch (validate, rules, enrich) -> write (MongoDB, DLQ, enriched) -> commit.
Offsets are committed only after every write of the batch is acknowledged, so a crash at any
point means redelivery, and idempotent upserts make redelivery harmless.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from include import kafka_io, mongo_io
from include.config import Settings
from include.rules import Detector, RulesError, load_rules
from streaming.metrics import ProcessorMetrics
from streaming.pipeline import BatchResult, process_batch
from streaming.sinks import MONGO_RETRYABLE, StopRequested, with_retry, write_batch

log = logging.getLogger("txnmon.stream")

RULES_CHECK_INTERVAL_S = 2.0


class RulesWatcher:
    """Reloads the rules file when it changes (or on SIGHUP); a bad file is refused, old rules stay."""

    def __init__(self, path: Path, detector: Detector, metrics: ProcessorMetrics) -> None:
        self.path = path
        self.detector = detector
        self.metrics = metrics
        self.requested = False
        self._mtime = self._stat()
        self._checked = time.monotonic()

    def _stat(self) -> tuple[float, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def maybe_reload(self) -> None:
        """Called between batches only, so one batch never mixes two rule sets."""
        now = time.monotonic()
        if not self.requested and now - self._checked < RULES_CHECK_INTERVAL_S:
            return
        self._checked = now
        current = self._stat()
        if not self.requested and current == self._mtime:
            return
        self.requested = False
        self._mtime = current
        try:
            ruleset = load_rules(self.path)
        except RulesError as exc:
            log.error("rules reload refused, keeping version %s: %s", self.detector.version, exc,
                      extra={"rules_version": self.detector.version})
            return
        if ruleset.version == self.detector.version:
            return
        old = self.detector.version
        self.detector.use_rules(ruleset)
        self.metrics.rules.info({"version": ruleset.version})
        log.info("rules reloaded: %s -> %s", old, ruleset.version, extra={"rules_version": ruleset.version})


class Processor:
    """One member of the consumer group. `run()` returns when stopped or idle long enough."""

    def __init__(self, settings: Settings, *, group_id: str | None = None) -> None:
        self.settings = settings
        self.group_id = group_id or settings.consumer_group
        self.metrics = ProcessorMetrics()
        self.detector = Detector(load_rules(settings.rules_file))
        self.rules = RulesWatcher(Path(settings.rules_file), self.detector, self.metrics)
        self.metrics.rules.info({"version": self.detector.version})
        self.stop_event = threading.Event()
        self.batches = 0
        self.assigned: list[int] = []
        self.assigned_at: float | None = None  # monotonic time of the first assignment
        self._assignment_changed = time.monotonic()

    # --- lifecycle ---------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        if not self.stop_event.is_set():
            log.info("stop requested: finishing the current batch")
        self.stop_event.set()

    def request_rules_reload(self, *_: Any) -> None:
        self.rules.requested = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_rules_reload)

    def _on_rebalance(self, change: str, partitions: list[int]) -> None:
        # Another member may have handled these users meanwhile: forget all state and let it
        # reload from MongoDB on demand. Rebalances are rare; correctness beats a warm cache.
        self.detector.reset()
        self.assigned = partitions if change == "assigned" else []
        self._assignment_changed = time.monotonic()
        if self.assigned and self.assigned_at is None:
            self.assigned_at = self._assignment_changed
        log.info("partitions %s: %s", change, partitions, extra={"partitions": partitions, "change": change})

    def _load_state(self, user_ids: set[str]) -> dict[str, dict[str, Any]]:
        db = mongo_io.get_db(self.settings)
        return with_retry(lambda: mongo_io.load_user_state(db, user_ids), sink="mongodb",
                          retryable=MONGO_RETRYABLE, should_stop=self.stop_event.is_set, metrics=self.metrics)

    def run(self, *, max_idle_s: float | None = None) -> int:
        s = self.settings
        self.metrics.serve(s.metrics_port)
        db = mongo_io.get_db(s)
        retry = {"should_stop": self.stop_event.is_set, "metrics": self.metrics}
        try:
            with_retry(lambda: mongo_io.ensure_indexes(db), sink="mongodb", retryable=MONGO_RETRYABLE, **retry)
            producer = with_retry(lambda: kafka_io.make_producer(s), sink="kafka",
                                  retryable=(kafka_io.KafkaUnavailable,), **retry)
        except StopRequested:
            log.info("stopped before start-up completed")
            return 0
        try:
            consumer = with_retry(
                lambda: kafka_io.make_consumer(s, group_id=self.group_id, max_poll_interval_ms=600_000),
                sink="kafka", retryable=(kafka_io.KafkaUnavailable,), **retry)
        except StopRequested:
            producer.close()
            return 0
        kafka_io.subscribe(consumer, s.topic_raw, self._on_rebalance)
        log.info("processor started: %s -> mongodb %s, group %s, rules %s", s.topic_raw, s.mongo_db,
                 self.group_id, self.detector.version)
        idle_since = time.monotonic()
        clean = True
        try:
            while not self.stop_event.is_set():
                self.rules.maybe_reload()
                try:
                    records = kafka_io.poll_records(consumer, s.poll_timeout_ms, s.batch_max_records)
                except kafka_io.KafkaError as exc:
                    # the client reconnects by itself; nothing was read, so nothing is at risk
                    log.warning("kafka poll failed: %s; retrying in 1s", exc, extra={"sink": "kafka"})
                    time.sleep(1)
                    continue
                if not records:
                    # idle counts only while partitions are assigned: a member waiting for the
                    # group to rebalance (e.g. after a crashed member's session expires) is not idle
                    quiet_since = max(idle_since, self._assignment_changed)
                    if max_idle_s is not None and self.assigned and time.monotonic() - quiet_since >= max_idle_s:
                        log.info("idle for %.1fs: exiting", max_idle_s)
                        break
                    continue
                idle_since = time.monotonic()
                try:
                    self._handle(records, db, producer, consumer)
                except StopRequested as exc:
                    log.warning("stopping with the last batch uncommitted (it will be redelivered): %s", exc)
                    clean = False
                    break
        finally:
            try:
                consumer.close()
            finally:
                producer.close()
        log.info("processor stopped after %d batches%s", self.batches, "" if clean else " (last batch not committed)")
        return 0

    def _handle(self, records: list[kafka_io.SourceRecord], db: Any, producer: Any, consumer: Any) -> BatchResult:
        started = time.perf_counter()
        now = dt.datetime.now(dt.UTC)
        result = process_batch(records, self.detector, self.settings, now=now, load_state=self._load_state)
        inserted, existing = write_batch(
            result, db=db, producer=producer, topic_enriched=self.settings.topic_enriched,
            topic_dlq=self.settings.topic_dlq, should_stop=self.stop_event.is_set, metrics=self.metrics,
        )
        try:
            with_retry(lambda: kafka_io.commit_offsets(consumer, self.settings.topic_raw, result.next_offsets),
                       sink="kafka-commit", retryable=(kafka_io.RetriableKafkaError,),
                       should_stop=self.stop_event.is_set, metrics=self.metrics)
        except kafka_io.CommitFailed as exc:
            # The group moved on (rebalance) while we wrote: the new owner gets these records
            # again and the idempotent writes make that harmless.
            log.warning("offset commit refused after a rebalance; batch will be redelivered: %s", exc)
        self.batches += 1
        m = self.metrics
        m.consumed.inc(result.consumed)
        m.stored.inc(inserted)
        m.duplicates.inc(existing)
        m.late.inc(result.late)
        for reason, n in result.rejected_by_reason.items():
            m.dlq.labels(reason).inc(n)
        for rule, n in result.alerts_by_rule.items():
            m.alerts.labels(rule).inc(n)
        for alert in result.suppressed:
            m.suppressed.labels(alert["rule"]).inc()
        for alert in result.shadow:
            m.shadow.labels(alert["rule"]).inc()
        m.batch_seconds.observe(time.perf_counter() - started)
        m.batch_size.observe(result.consumed)
        m.users_in_state.set(len(self.detector.state))
        try:
            lag = kafka_io.lag_of(consumer)
        except kafka_io.KafkaError:
            lag = None  # a metric is not worth failing a committed batch for
        if lag is not None:
            m.lag.set(lag)
        log.debug("batch %d: %d in, %d stored, %d existing, %d dlq, %d alerts", self.batches, result.consumed,
                  inserted, existing, len(result.dlq), len(result.alerts))
        return result


def run_processor(settings: Settings, *, max_idle_s: float | None = None, group_id: str | None = None) -> int:
    """Entry point of `txnmon stream`."""
    processor = Processor(settings, group_id=group_id)
    processor.install_signal_handlers()
    log.info("pid %d", os.getpid())
    return processor.run(max_idle_s=max_idle_s)
