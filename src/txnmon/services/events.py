"""`txnmon events`: the long-running consumer-group member on the cart, stock and review topics.

One member of EVENTS_GROUP reads TOPIC_CARTS, TOPIC_INVENTORY and TOPIC_REVIEWS. Per batch:

1. each record is judged by its kind's contract (`core.event_batch.judge_batch`); a bad one becomes a
   DLQ message and a `rejected` document, exactly as the processor makes them, and never holds its
   partition;
2. the valid events are inserted by `_id` into cart_events / stock_events / reviews; an id stored
   before with other content is rejected as `duplicate_id_conflict` (the first is kept);
3. the rejects are stored in `rejected` and sent to TOPIC_DLQ;
4. the partitions' event-time watermarks are saved, then the offsets committed.

At-least-once: every write is idempotent, so a batch redelivered after a crash before step 4 changes
nothing stored (its DLQ copies may be sent twice). Outages are retried without end (pipeline.retry):
nothing is skipped.

Then the analyses (`ANALYSES`, each `run_<name>(store, settings, *, closed_until)`) run over closed
event time (`pipeline.event_sinks.closed_event_time`, from every member's stored watermarks and the
broker's end offsets, so members agree; `txnmon stock|sentiment run` use the same function). They run
after each stored batch and every few seconds while idle; one that raises is logged and called again
next time, and never stops the consumer or the other analyses.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from txnmon.core.batch import processing_error
from txnmon.core.event_batch import EventBatch, judge_batch
from txnmon.core.records import SourceRecord
from txnmon.core.watermark import Watermarks
from txnmon.errors import CommitRefused, KafkaUnavailable, RetryableError, StopRequested
from txnmon.jobs.abandonment import run_abandonment
from txnmon.jobs.sentiment import run_sentiment
from txnmon.jobs.stock import run_stock
from txnmon.pipeline.event_sinks import EventsPorts, closed_event_time
from txnmon.pipeline.retry import with_retry
from txnmon.services.failpoints import Failpoints
from txnmon.services.metrics import EventsMetrics
from txnmon.settings import Settings

log = logging.getLogger("txnmon.events")

# run_<name>(store, settings, *, closed_until) -> its summary, called in this order (issue #31)
Analysis = Callable[..., Any]
ANALYSES: tuple[Analysis, ...] = (run_stock, run_sentiment, run_abandonment)

IDLE_ANALYSIS_EVERY_S = 5.0  # while no input arrives, the analyses still run this often (time may close)
FETCH_WAIT_MAX_S = 30.0  # --exit-when-idle waits this long at most for the first fetch after an assignment
# --exit-when-idle: how long the last run waits for an analysis another run holds (a member killed mid-walk
# holds its lease until the term ends: jobs.walk_lease.TERM, 30 s), so exiting means the walks are done
FINAL_BUSY_WAIT_S = 75.0

PortsFactory = Callable[["EventsService"], tuple[EventsPorts, Any]]


def _production_ports(service: EventsService) -> tuple[EventsPorts, Any]:
    from txnmon.services.events_wiring import kafka_and_mongo

    return kafka_and_mongo(service.settings, service.group_id, service.on_rebalance, service.stop_event.is_set,
                           service._count_retry)


class EventsService:
    """One member of EVENTS_GROUP. `run()` returns when stopped, or idle long enough (`max_idle_s`)."""

    def __init__(self, settings: Settings, *, group_id: str | None = None, ports: PortsFactory | None = None,
                 analyses: Sequence[Analysis] | None = None) -> None:
        self.settings = settings
        self.group_id = group_id or settings.events_group
        self.ports_factory = ports or _production_ports
        self.analyses = tuple(ANALYSES if analyses is None else analyses)
        self.kind_of_topic = {settings.topic_carts: "carts", settings.topic_inventory: "stock",
                              settings.topic_reviews: "reviews"}
        self.watermarks = {topic: Watermarks() for topic in self.kind_of_topic}
        self.assigned: set[tuple[str, int]] = set()
        self._to_restore: set[tuple[str, int]] = set()
        self._assignment_changed = time.monotonic()
        self.metrics = EventsMetrics()
        self.failpoints = Failpoints(os.environ.get("TXNMON_FAILPOINTS"))
        self.stop_event = threading.Event()
        self.batches = 0
        self.closed: dt.datetime | None = None  # never moves back within this process
        self.last_results: dict[str, Any] = {}  # per analysis: its last summary, or the exception it raised
        self.ports: EventsPorts | None = None
        self.store: Any = None

    # --- lifecycle -------------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        if not self.stop_event.is_set():
            log.info("stop requested: finishing the current batch")
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def on_rebalance(self, change: str, partitions: list[tuple[str, int]]) -> None:
        """Runs inside poll. Newly assigned partitions get their stored watermarks before their first batch."""
        mine = {tp for tp in partitions if tp[0] in self.kind_of_topic}
        if change == "assigned":
            self.assigned |= mine
            self._to_restore |= mine
        else:
            self.assigned -= mine
            self._to_restore -= mine
            for topic, partition in mine:
                self.watermarks[topic].forget([partition])
        self._assignment_changed = time.monotonic()
        log.info("partitions %s: %s", change, partitions)

    def _count_retry(self, sink: str) -> None:
        self.metrics.retries.labels(sink).inc()

    def _retry(self, action: Callable[[], Any], sink: str) -> Any:
        return with_retry(action, sink=sink, should_stop=self.stop_event.is_set, on_retry=self._count_retry)

    def run(self, *, max_idle_s: float | None = None) -> int:
        s = self.settings
        self.metrics.serve(s.events_metrics_port, s.metrics_address)
        try:
            self.ports, self.store = self.ports_factory(self)
        except StopRequested:
            log.info("stopped before start-up completed")
            return 0
        ports = self.ports
        log.info("events service started: %s -> mongodb %s, group %s, %d analyses",
                 ", ".join(self.kind_of_topic), s.mongo_db, self.group_id, len(self.analyses))
        last_input = last_analysis = time.monotonic()
        clean = True
        try:
            while not self.stop_event.is_set():
                try:
                    records = ports.poll(s.poll_timeout_ms, s.batch_max_records)
                except KafkaUnavailable as exc:
                    log.warning("%s; retrying in %.0fs", exc, exc.retry_after)
                    time.sleep(exc.retry_after)
                    continue
                records = [r for r in records if (r.topic, r.partition) in self.assigned]
                now = time.monotonic()
                if records:
                    last_input = now
                    try:
                        self.handle(records)
                    except StopRequested as exc:
                        log.warning("stopping with the last batch uncommitted (it will be redelivered): %s", exc)
                        clean = False
                        break
                    self.run_analyses()
                    last_analysis = time.monotonic()
                    continue
                quiet_since = max(last_input, self._assignment_changed)
                if (max_idle_s is not None and self.assigned and now - quiet_since >= max_idle_s
                        and self._fetched(ports)):
                    self.run_analyses(final=True)  # the input is done: drained partitions count as quiet
                    log.info("idle for %.1fs: exiting", max_idle_s)
                    break
                if now - last_analysis >= IDLE_ANALYSIS_EVERY_S:
                    self.run_analyses()
                    last_analysis = time.monotonic()
        finally:
            ports.close()
        log.info("events service stopped after %d batches%s", self.batches,
                 "" if clean else " (last batch not committed)")
        return 0

    def _fetched(self, ports: EventsPorts) -> bool:
        """Whether the broker answered a fetch for every assigned partition (so an empty poll means none
        waits), or FETCH_WAIT_MAX_S passed since the assignment (see services.processor)."""
        if time.monotonic() - self._assignment_changed >= FETCH_WAIT_MAX_S:
            return True
        lag = getattr(ports, "lag", None)
        return lag is None or lag() is not None

    # --- one batch -------------------------------------------------------------------------

    def _restore(self, ports: EventsPorts) -> None:
        """The stored watermarks of partitions assigned since the last batch (any earlier owner's)."""
        pending = self._to_restore & self.assigned
        for topic in sorted({t for t, _ in pending}):
            stored = self._retry(lambda t=topic: ports.load_marks(t), "mongodb")
            # whole documents: `before` and `next_offset` let a redelivered batch start from the marks before it
            self.watermarks[topic].restore({p: doc for p, doc in stored.items() if (topic, p) in pending})
        self._to_restore.clear()

    def handle(self, records: Sequence[SourceRecord]) -> EventBatch:
        """Judge, write MongoDB and the DLQ, save the watermarks, then commit the offsets."""
        assert self.ports is not None
        ports, s = self.ports, self.settings
        started = time.perf_counter()
        self._restore(ports)
        now = dt.datetime.now(dt.UTC)
        batch = judge_batch(records, self.kind_of_topic, zone=s.zone, now=now, max_bytes=s.max_message_bytes,
                            dlq_max_bytes=s.dlq_max_bytes)
        refusals = self._store_events(ports, batch)
        for collection, refused in refusals.items():
            for index, rejection in sorted(refused.items()):
                batch.reject(batch.origins[collection][index], rejection, now, "store", s.dlq_max_bytes)
        self._retry(lambda: ports.store_rejected(batch), "mongodb")
        self._retry(lambda: ports.send_dlq(batch.dlq), "kafka-dlq")
        self.failpoints.hit("events-written")
        self._save_marks(ports, batch)
        try:
            self._retry(lambda: ports.commit(batch.offsets), "kafka-commit")
            self.failpoints.hit("events-committed")
        except CommitRefused as exc:
            # the partitions' new owner reads the batch again; every write above is idempotent
            log.warning("offsets not committed after a rebalance; the batch goes to the new owner: %s", exc)
        self.batches += 1
        self._record_metrics(records, batch, refusals, started)
        return batch

    def _store_events(self, ports: EventsPorts, batch: EventBatch) -> dict[str, Any]:
        """Outages are retried; any other failure of the whole write (a bug, a refusal naming no document)
        makes the batch's events `processing_error` rejects (DLQ and `rejected`, to send again after a
        fix) rather than stopping the process on a batch it would read again forever."""
        try:
            return self._retry(lambda: ports.store_events(batch), "mongodb")
        except (StopRequested, RetryableError):
            raise
        except Exception as exc:
            log.exception("storing a batch's events failed; its %d event(s) go to the DLQ", batch.stored_count)
            return {collection: {i: processing_error(batch.origins[collection][i], exc) for i in range(len(docs))}
                    for collection, docs in batch.events.items() if docs}

    def _save_marks(self, ports: EventsPorts, batch: EventBatch) -> None:
        """Per partition of the batch: its newest event times after it and before it, the offset after it
        and when (core.watermark.stored): a batch redelivered after a crash before its commit starts from
        the marks before it (`Watermarks.start`), so its own event times are not counted twice."""
        before: dict[tuple[str, int], list[dt.datetime]] = {}
        for (topic, partition), first in batch.firsts.items():
            self.watermarks[topic].start(partition, first)
            before[(topic, partition)] = self.watermarks[topic].export([partition]).get(partition, [])
        for (topic, partition), times in batch.times.items():
            for t in times:
                self.watermarks[topic].observe(partition, t)
        now = dt.datetime.now(dt.UTC)
        by_topic: dict[str, dict[int, dict[str, Any]]] = {}
        for (topic, partition), next_offset in batch.offsets.items():
            # saved even without event times (a batch of rejects): the offset shows the partition drained
            newest = self.watermarks[topic].export([partition]).get(partition, [])
            by_topic.setdefault(topic, {})[partition] = {"newest": newest, "before": before.get((topic, partition), []),
                                                         "next_offset": next_offset, "stored_at": now}
        for topic, marks in sorted(by_topic.items()):
            self._retry(lambda t=topic, m=marks: ports.save_marks(t, m), "mongodb")

    def _record_metrics(self, records: Sequence[SourceRecord], batch: EventBatch, refusals: dict[str, Any],
                        started: float) -> None:
        m = self.metrics
        for topic, n in Counter(r.topic for r in records).items():
            m.consumed.labels(topic).inc(n)
        for collection, docs in batch.events.items():
            kept = len(docs) - len(refusals.get(collection, {}))
            m.stored.labels(collection).inc(kept)
        for reason, n in batch.rejected_by_reason.items():
            m.dlq.labels(reason).inc(n)
        m.batch_seconds.observe(time.perf_counter() - started)
        log.debug("batch %d: %d read, %d events, %d rejected", self.batches, batch.consumed, batch.stored_count,
                  len(batch.rejected))

    # --- closed event time and the analyses ------------------------------------------------

    def closed_until(self, *, final: bool = False) -> dt.datetime | None:
        """How far event time is closed now (`closed_event_time`, the same for every member and for
        `txnmon stock|sentiment run`); never earlier than what this process computed before. `final`
        (the --exit-when-idle exit): drained partitions count as quiet at once."""
        assert self.ports is not None
        until = closed_event_time(self.ports, self.settings, now=dt.datetime.now(dt.UTC),
                                  quiet_after_s=0 if final else None)
        if until is not None and (self.closed is None or until > self.closed):
            self.closed = until
            self.metrics.closed_until.set(until.timestamp())
        return self.closed

    def run_analyses(self, *, final: bool = False) -> dict[str, Any]:
        """Every analysis once, in order, over closed event time; each isolated: one that raises is logged
        (its exception kept in `last_results`) and called again next time."""
        if not self.analyses:
            return {}
        try:
            until = self.closed_until(final=final)
        except Exception:
            log.exception("closed event time unknown (MongoDB?); the analyses run next time")
            return {}
        if until is None:
            return {}
        pending = list(self.analyses)
        give_up = time.monotonic() + (FINAL_BUSY_WAIT_S if final else 0.0)
        while pending:
            busy = [a for a in pending if isinstance(self._run_analysis(a, until), RetryableError)]
            if not busy or time.monotonic() >= give_up or self.stop_event.is_set():
                break
            # the last run before exiting: an analysis another run holds (its lease) is waited for
            wait = min(max(getattr(self.last_results[_name(a)], "retry_after", 1.0) for a in busy), 5.0)
            if self.stop_event.wait(max(0.1, min(wait, give_up - time.monotonic()))):
                break
            pending = busy
        return dict(self.last_results)

    def _run_analysis(self, analysis: Analysis, until: dt.datetime) -> Any:
        """One analysis, isolated: its summary, or the exception it raised (logged, counted, kept)."""
        name = _name(analysis)
        try:
            self.last_results[name] = analysis(self.store, self.settings, closed_until=until)
        except Exception as exc:
            if isinstance(exc, RetryableError):  # held by another run, or an outage: no traceback every batch
                log.warning("analysis %s not run up to %s (%s); it runs again next time", name, until.isoformat(), exc)
            else:
                log.exception("analysis %s failed up to %s; it runs again next time", name, until.isoformat())
            self.metrics.analysis_failures.labels(name).inc()
            self.last_results[name] = exc
        return self.last_results[name]


def _name(analysis: Analysis) -> str:
    return getattr(analysis, "__name__", repr(analysis))


def run_events(settings: Settings, *, max_idle_s: float | None = None, group_id: str | None = None) -> int:
    """Entry point of `txnmon events`."""
    service = EventsService(settings, group_id=group_id)
    service.install_signal_handlers()
    log.info("pid %d", os.getpid())
    return service.run(max_idle_s=max_idle_s)
