"""`txnmon stream`: the long-running consumer-group member.

poll -> process_batch (validate, rules, enrich) -> sinks (MongoDB, DLQ, enriched) -> commit.
Offsets are committed only after every sink has written the batch, so a crash at any point
means redelivery, and idempotent writes make redelivery harmless.

The loop talks to a `Source` and a list of sinks, never to a client library: `txnmon stream`
gets a Kafka consumer-group member and the MongoDB/Kafka sinks, the unit tests get lists
(tests/fixtures/doubles.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from include.config import Settings
from include.connectors import kafka
from include.connectors.mongo import MongoStore
from include.core.batch import BatchConfig, BatchResult, process_batch
from include.core.records import SourceRecord
from include.core.rules import Detector, RulesError, load_rules
from include.core.watermark import Watermarks
from include.errors import CommitRefused, KafkaUnavailable, StopRequested
from include.jobs.store_batch import Sink, default_sinks, with_retry, write_batch
from streaming.metrics import ProcessorMetrics

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


class Source(Protocol):
    """Where batches come from: a consumer-group member (KafkaSource) or a list in tests."""

    def poll(self, timeout_ms: int, max_records: int) -> list[SourceRecord]: ...

    def commit(self, next_offsets: Mapping[int, int]) -> None: ...

    def lag(self) -> int | None: ...

    def close(self) -> None: ...


# (processor) -> the source, the sinks and the state loader it runs with, built once at start-up
Wiring = Callable[["Processor"], tuple[Source, Sequence[Sink], Callable[[], None]]]


class Processor:
    """One member of the consumer group. `run()` returns when stopped or idle long enough."""

    def __init__(self, settings: Settings, *, group_id: str | None = None, wiring: Wiring | None = None,
                 load_state: Callable[[set[str]], Mapping[str, Mapping[str, object]]] | None = None) -> None:
        self.settings = settings
        self.group_id = group_id or settings.consumer_group
        self.batch_config = BatchConfig.from_settings(settings)
        self.wiring = wiring or kafka_and_mongo
        self._load_state_from = load_state
        self._load_watermarks_from: Callable[[list[int]], Mapping[int, list[dt.datetime]]] | None = None
        self.watermarks = Watermarks()
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

    def on_rebalance(self, change: str, partitions: list[int]) -> None:
        # Another member may have handled these users meanwhile: forget all state and let it
        # reload from MongoDB on demand. Rebalances are rare; correctness beats a warm cache.
        self.detector.reset()
        self.watermarks.forget(self.watermarks.known())  # resumed from the store per partition, on first use
        self.assigned = partitions if change == "assigned" else []
        self._assignment_changed = time.monotonic()
        if self.assigned and self.assigned_at is None:
            self.assigned_at = self._assignment_changed
        log.info("partitions %s: %s", change, partitions, extra={"partitions": partitions, "change": change})

    def _load_state(self, user_ids: set[str]) -> Mapping[str, Mapping[str, object]]:
        load = self._load_state_from
        assert load is not None, "wiring sets the state loader"
        return with_retry(lambda: load(user_ids), sink="mongodb", should_stop=self.stop_event.is_set,
                          on_retry=self._count_retry)

    def _restore_watermarks(self, partitions: set[int]) -> None:
        """Partitions new to this member resume the watermark their last owner stored."""
        new = sorted(partitions - self.watermarks.known())
        load = self._load_watermarks_from
        if new and load is not None:
            saved = with_retry(lambda: load(new), sink="mongodb", should_stop=self.stop_event.is_set,
                               on_retry=self._count_retry)
            self.watermarks.restore(saved)

    def _count_retry(self, sink: str) -> None:
        self.metrics.retries.labels(sink).inc()

    def run(self, *, max_idle_s: float | None = None) -> int:
        s = self.settings
        self.metrics.serve(s.metrics_port, s.metrics_address)
        try:
            source, sinks, close = self.wiring(self)
        except StopRequested:
            log.info("stopped before start-up completed")
            return 0
        log.info("processor started: %s -> mongodb %s, group %s, rules %s", s.topic_raw, s.mongo_db,
                 self.group_id, self.detector.version)
        idle_since = time.monotonic()
        clean = True
        try:
            while not self.stop_event.is_set():
                self.rules.maybe_reload()
                try:
                    records = source.poll(s.poll_timeout_ms, s.batch_max_records)
                except KafkaUnavailable as exc:
                    # the client reconnects by itself; nothing was read, so nothing is at risk
                    log.warning("%s; retrying in %.0fs", exc, exc.retry_after, extra={"sink": "kafka"})
                    time.sleep(exc.retry_after)
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
                    self.handle(records, source, sinks)
                except StopRequested as exc:
                    log.warning("stopping with the last batch uncommitted (it will be redelivered): %s", exc)
                    clean = False
                    break
        finally:
            try:
                source.close()
            finally:
                close()
        log.info("processor stopped after %d batches%s", self.batches, "" if clean else " (last batch not committed)")
        return 0

    def handle(self, records: list[SourceRecord], source: Source, sinks: Sequence[Sink]) -> BatchResult:
        """One batch: process, write through every sink, then commit its offsets."""
        started = time.perf_counter()
        now = dt.datetime.now(dt.UTC)
        self._restore_watermarks({r.partition for r in records})
        result = process_batch(records, self.detector, self.batch_config, now=now, load_state=self._load_state,
                               watermarks=self.watermarks)
        inserted, existing = write_batch(result, sinks, should_stop=self.stop_event.is_set,
                                         on_retry=self._count_retry)
        for tid in result.withdrawn:  # refused by the store or in conflict: not part of the user's history
            self.detector.forget(result.judgements[tid].user_id, tid)
        try:
            with_retry(lambda: source.commit(result.next_offsets), sink="kafka-commit",
                       should_stop=self.stop_event.is_set, on_retry=self._count_retry)
        except CommitRefused as exc:
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
        lag = source.lag()
        if lag is not None:
            m.lag.set(lag)
        log.debug("batch %d: %d in, %d stored, %d existing, %d dlq, %d alerts", self.batches, result.consumed,
                  inserted, existing, len(result.dlq), len(result.alerts))
        return result


def kafka_and_mongo(processor: Processor) -> tuple[Source, Sequence[Sink], Callable[[], None]]:
    """The production wiring: a consumer-group member on TOPIC_RAW, MongoDB and Kafka sinks.

    Start-up retries until the services answer (or a stop is requested: StopRequested).
    """
    s = processor.settings
    retry = {"should_stop": processor.stop_event.is_set, "on_retry": processor._count_retry}
    store = MongoStore(s)
    with_retry(store.ensure_indexes, sink="mongodb", **retry)
    if processor._load_state_from is None:
        processor._load_state_from = store.load_user_state
    producer = with_retry(lambda: kafka.make_producer(s), sink="kafka", **retry)
    try:
        source = with_retry(
            lambda: kafka.KafkaSource(s, s.topic_raw, processor.group_id, processor.on_rebalance,
                                      max_poll_interval_ms=600_000),
            sink="kafka", **retry)
    except BaseException:
        producer.close()
        raise
    if processor._load_watermarks_from is None:
        processor._load_watermarks_from = lambda partitions: store.load_watermarks(s.topic_raw, partitions)
    sinks = default_sinks(store, producer, s.topic_enriched, s.topic_dlq, topic_raw=s.topic_raw)
    return source, sinks, producer.close


def run_processor(settings: Settings, *, max_idle_s: float | None = None, group_id: str | None = None) -> int:
    """Entry point of `txnmon stream`."""
    processor = Processor(settings, group_id=group_id)
    processor.install_signal_handlers()
    log.info("pid %d", os.getpid())
    return processor.run(max_idle_s=max_idle_s)
