"""`txnmon stream`: the long-running consumer-group member, exactly-once on the Kafka side.

One member reads two topics of the group:
- TOPIC_RAW: each message is validated and re-keyed by its normalised user_id into TOPIC_BY_USER
  (invalid ones go to the DLQ), so every event of a user lands on one partition whatever key the
  producer used (the seed's producer sends none);
- TOPIC_BY_USER: each user's events are judged in the order they arrived there, against the
  user's state, which lives in the compacted TOPIC_STATE (partition p = the users of by-user
  partition p) and is restored when a member is assigned a partition.

Per batch: MongoDB first (transactions, alerts, rejected: idempotent inserts by natural id), then
one Kafka transaction with the re-keyed messages, the DLQ copies, the enriched events, the
touched users' state and the consumed offsets. A crash before the commit leaves nothing of the
batch visible and the offsets where they were; the batch is judged again from the state
committed with them, so every transaction gets exactly the same verdicts.

The loop talks to the pipeline's ports (a `Source`, sinks, a `Publisher`, a `StateStore`), never to a
client library: `txnmon stream` gets Kafka and MongoDB (services.wiring), the unit tests get lists
(tests/fixtures/doubles.py).
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

from txnmon.core import gazetteer
from txnmon.core.batch import BatchConfig, BatchResult, process_batch, route_batch
from txnmon.core.handoff import Handoff
from txnmon.core.records import Message, SourceRecord
from txnmon.core.rules import Detector, load_rules
from txnmon.core.scoring import worth_scoring
from txnmon.core.state_codec import state_messages
from txnmon.core.watermark import Watermarks
from txnmon.errors import CommitRefused, KafkaUnavailable, StopRequested
from txnmon.notifications.outbox import RoutesFeed
from txnmon.pipeline.ports import Outbound
from txnmon.pipeline.retry import with_retry
from txnmon.pipeline.runner import write_batch
from txnmon.services.collector import tune_collector
from txnmon.services.failpoints import Failpoints
from txnmon.services.metrics import ProcessorMetrics
from txnmon.services.model_watcher import ModelWatcher
from txnmon.services.rules_watcher import RulesWatcher
from txnmon.services.wiring import Wired, Wiring, kafka_and_mongo
from txnmon.settings import Settings

log = logging.getLogger("txnmon.stream")

FETCH_WAIT_MAX_S = 30.0  # --exit-when-idle waits this long at most for the first fetch after an assignment


class Processor:
    """One member of the consumer group. `run()` returns when stopped or idle long enough."""

    def __init__(self, settings: Settings, *, group_id: str | None = None, wiring: Wiring | None = None) -> None:
        self.settings = settings
        self.group_id = group_id or settings.consumer_group
        self.batch_config = BatchConfig.from_settings(settings)
        self.wiring = wiring or kafka_and_mongo
        self.watermarks = Watermarks()
        # what routing validated, by the exact bytes forwarded: their by-user copies are not parsed again
        # (bounded by count and by the raw bytes kept, DEFAULT_MAX_KEPT_BYTES: records may be large)
        self.handoff = Handoff(max(10 * settings.batch_max_records, 1_000))
        self.metrics = ProcessorMetrics()
        # users leave memory only by idling past every rule's window (a tombstone goes to the changelog):
        # a count limit would forget users the changelog still holds, and verdicts would depend on it
        self.detector = Detector(load_rules(settings.rules_file), unbounded_users=True)
        self.detector.state.track_dropped = True
        self.rules = RulesWatcher(Path(settings.rules_file), self.detector, self.metrics)
        self.metrics.rules.info({"version": self.detector.version})
        self.stop_event = threading.Event()
        self.batches = 0
        self.assigned: list[int] = []  # partitions of TOPIC_BY_USER this member judges
        self.assigned_raw: list[int] = []
        self.assigned_at: float | None = None  # monotonic time of the first assignment
        self._assignment_changed = time.monotonic()
        self.partition_of: dict[str, int] = {}  # user -> the by-user (and state) partition holding them
        self._to_restore: set[int] = set()
        self._forwarded = False  # the last batch forwarded records to the by-user topic (see _gather)
        self.wired: Wired | None = None
        self.failpoints = Failpoints(os.environ.get("TXNMON_FAILPOINTS"))
        self.lists: Any = None  # the named lists' feed (src/txnmon/jobs/lists.py), set by the MongoDB wiring
        # the promoted risk model (src/txnmon/services/model_watcher.py), set by the MongoDB wiring or a test
        self.model: ModelWatcher | None = None
        # the notification routes (txnmon.notifications.outbox), reloaded between batches; a bad file stops the
        # start like bad rules do. The MongoDB wiring routes each batch's alerts with them into the outbox.
        self.routes: RoutesFeed | None = RoutesFeed(settings.notify_routes_file,
                                                        allowed_hosts=settings.notify_allowed_host_list)

    # --- lifecycle ---------------------------------------------------------------------

    def request_stop(self, *_: Any) -> None:
        if not self.stop_event.is_set():
            log.info("stop requested: finishing the current batch")
        self.stop_event.set()

    def request_rules_reload(self, *_: Any) -> None:
        self.rules.request()
        if self.routes is not None:
            self.routes.request()
        if self.model is not None:
            self.model.request()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_rules_reload)

    def on_rebalance(self, change: str, partitions: list[tuple[str, int]]) -> None:
        """Runs inside poll. The users of partitions this member got are restored from the changelog
        before their first batch; those of partitions it lost are forgotten."""
        mine = sorted(p for t, p in partitions if t == self.settings.topic_by_user)
        raw = sorted(p for t, p in partitions if t == self.settings.topic_raw)
        if change == "assigned":
            self.assigned = sorted(set(self.assigned) | set(mine))
            self.assigned_raw = sorted(set(self.assigned_raw) | set(raw))
            self._to_restore |= set(mine)
        else:
            self.assigned = [p for p in self.assigned if p not in mine]
            self.assigned_raw = [p for p in self.assigned_raw if p not in raw]
            # a partition revoked before its first batch must not be restored later: its users belong
            # to another member, and any state written for them here would overwrite theirs
            self._to_restore -= set(mine)
            self._forget_partitions(set(mine))
        self._assignment_changed = time.monotonic()
        if (self.assigned or self.assigned_raw) and self.assigned_at is None:
            self.assigned_at = self._assignment_changed
        log.info("partitions %s: %s", change, partitions, extra={"partitions": [list(tp) for tp in partitions],
                                                                 "change": change})

    def _forget_partitions(self, partitions: set[int]) -> None:
        gone = [u for u, p in self.partition_of.items() if p in partitions]
        self.detector.state.discard(gone)
        for user in gone:
            del self.partition_of[user]
        self.watermarks.forget(partitions)

    def _restore(self, wired: Wired) -> None:
        """State of newly assigned partitions, from the changelog (committed data only). Only what is
        assigned now: a partition this member no longer owns is not loaded."""
        self._to_restore &= set(self.assigned)
        while self._to_restore:
            partition = min(self._to_restore)
            started = time.perf_counter()
            self._forget_partitions({partition})
            users = 0
            for user_id, doc in with_retry(lambda p=partition: list(wired.state.restore(p)), sink="kafka-state",
                                           should_stop=self.stop_event.is_set, on_retry=self._count_retry):
                if doc is None:
                    self.detector.state.discard([user_id])
                    self.partition_of.pop(user_id, None)
                    continue
                self.detector.state.discard([user_id])
                self.detector.import_packed(user_id, *doc)
                self.partition_of[user_id] = partition
                users += 1
            saved = with_retry(lambda p=partition: wired.load_watermarks([p]), sink="mongodb",
                               should_stop=self.stop_event.is_set, on_retry=self._count_retry)
            self.watermarks.restore(saved)
            self.detector.state.take_dropped()  # restoring is not evicting
            tune_collector()
            self._to_restore.discard(partition)
            log.info("restored %d users of partition %d in %.2fs", users, partition, time.perf_counter() - started,
                     extra={"partition": partition, "users": users})

    def _owned(self, records: list[SourceRecord]) -> list[SourceRecord]:
        """The records of partitions assigned now. One poll can return records fetched before a revoke
        it also delivered: those are left to the new owner (nothing judged, written or committed here)."""
        owned = {self.settings.topic_by_user: set(self.assigned), self.settings.topic_raw: set(self.assigned_raw)}
        kept = [r for r in records if r.partition in owned.get(r.topic, ())]
        if len(kept) < len(records):
            log.info("%d records of revoked partitions left to their new owner", len(records) - len(kept))
        return kept

    def _count_retry(self, sink: str) -> None:
        self.metrics.retries.labels(sink).inc()

    def run(self, *, max_idle_s: float | None = None) -> int:
        s = self.settings
        self.metrics.serve(s.metrics_port, s.metrics_address)
        try:
            wired = self.wired = self.wiring(self)
        except StopRequested:
            log.info("stopped before start-up completed")
            return 0
        gazetteer.load()  # 1-2 s the first transaction would otherwise wait
        tune_collector()
        log.info("processor started: %s -> %s -> mongodb %s, group %s, rules %s", s.topic_raw, s.topic_by_user,
                 s.mongo_db, self.group_id, self.detector.version)
        idle_since = time.monotonic()
        clean = True
        try:
            if self.model is not None:  # before the first batch, which may be the retry of one judged with it
                try:
                    self.model.start(self.stop_event.is_set, self._count_retry)
                except StopRequested:
                    log.info("stopped before the promoted model was loaded")
            while not self.stop_event.is_set():
                self.rules.maybe_reload()
                if self.lists is not None:
                    self.lists.maybe_reload()
                if self.routes is not None:
                    self.routes.maybe_reload()
                if self.model is not None:
                    self.model.maybe_reload()
                try:
                    records = wired.source.poll(s.poll_timeout_ms, s.batch_max_records)
                except KafkaUnavailable as exc:
                    # the client reconnects by itself; nothing was read, so nothing is at risk
                    log.warning("%s; retrying in %.0fs", exc, exc.retry_after, extra={"sink": "kafka"})
                    time.sleep(exc.retry_after)
                    continue
                if records and self._forwarded and self.assigned and s.by_user_linger_ms:
                    records = self._gather(wired, records)
                records = self._owned(records)
                if not records:
                    # idle counts only while partitions are assigned: a member waiting for the
                    # group to rebalance (e.g. after a crashed member's session expires) is not idle
                    quiet_since = max(idle_since, self._assignment_changed)
                    if (max_idle_s is not None and (self.assigned or self.assigned_raw)
                            and time.monotonic() - quiet_since >= max_idle_s and self._fetched(wired)):
                        log.info("idle for %.1fs: exiting", max_idle_s)
                        break
                    continue
                idle_since = time.monotonic()
                try:
                    self._route_then_judge(records, wired)
                except StopRequested as exc:
                    log.warning("stopping with the last batch uncommitted (it will be redelivered): %s", exc)
                    clean = False
                    break
        finally:
            try:
                wired.source.close()
            finally:
                wired.close()
        log.info("processor stopped after %d batches%s", self.batches, "" if clean else " (last batch not committed)")
        return 0

    def _route_then_judge(self, records: list[SourceRecord], wired: Wired) -> None:
        """A poll with raw and by-user records: the raw ones are routed in a transaction of their own, and
        their by-user copies (readable from its commit on) are gathered into the batch judging the by-user
        ones. Routed in one batch with them, the copies waited for the next batch: each transaction sat
        through two batches' MongoDB writes and commits before its verdict instead of one. A full poll (a
        backlog) is not split: there the second commit would cost throughput and save no wait."""
        s = self.settings
        raw = [r for r in records if r.topic == s.topic_raw]
        if not s.route_first or not raw or len(raw) == len(records) or len(records) >= s.batch_max_records:
            self.handle(records, wired)
            return
        self.handle(raw, wired)
        held = [r for r in records if r.topic != s.topic_raw]
        if self._forwarded and s.by_user_linger_ms:
            held = self._gather(wired, held, new_only=True)
        if held := self._owned(held):
            self.handle(held, wired)

    def _gather(self, wired: Wired, records: list[SourceRecord], *, new_only: bool = False) -> list[SourceRecord]:
        """`records` and what arrives within BY_USER_LINGER_MS, until a by-user record is among them (the new
        ones: `new_only`): the last batch forwarded records to the by-user topic, readable since its commit.
        Without this wait those copies (this member's share) would wait a whole batch more."""
        s = self.settings
        first, assignment = (len(records) if new_only else 0), self._assignment_changed
        deadline = time.monotonic() + s.by_user_linger_ms / 1000
        while (not any(r.topic == s.topic_by_user for r in records[first:]) and len(records) < s.batch_max_records
               and (left := deadline - time.monotonic()) > 0):
            try:
                records = records + wired.source.poll(max(1, round(left * 1000)), s.batch_max_records - len(records))
            except KafkaUnavailable:
                break  # the consumer's position is past `records` already: they must be handled, not dropped
        if self._assignment_changed != assignment:
            # a partition revoked and assigned again within these polls is read again from its committed
            # offset: records polled before would come twice
            records = list({(r.topic, r.partition, r.offset): r for r in records}.values())
        return records

    def _fetched(self, wired: Wired) -> bool:
        """Whether the broker has answered a fetch for every assigned partition (the source knows their
        ends), so an empty poll means nothing waits. On a busy machine the first fetch after an
        assignment can take longer than --exit-when-idle, and the member left with records waiting.
        Waited for at most FETCH_WAIT_MAX_S after the assignment, then idle is idle."""
        if time.monotonic() - self._assignment_changed >= FETCH_WAIT_MAX_S:
            return True
        return wired.source.lag() is not None

    def handle(self, records: list[SourceRecord], wired: Wired) -> BatchResult:
        """One batch: route the raw records, judge the by-user ones, write MongoDB, then commit the
        Kafka side (messages, state, offsets) in one transaction."""
        started = time.perf_counter()
        s = self.settings
        self._restore(wired)
        now = dt.datetime.now(dt.UTC)
        offsets: dict[tuple[str, int], int] = {}
        raw, mine = [], []
        for r in records:
            offsets[(r.topic, r.partition)] = max(offsets.get((r.topic, r.partition), 0), r.offset + 1)
            (mine if r.topic == s.topic_by_user else raw).append(r)
        routed = route_batch(raw, self.batch_config, now=now, rules_version=self.detector.version,
                             handoff=self.handoff)
        hits, misses = self.handoff.hits, self.handoff.misses
        model = self.model.current if self.model is not None else None
        if model is not None and not worth_scoring(self.detector, s.model_shadow_scoring):
            model = None  # no typology weighs its signal: scoring would change no verdict
        # the raw rejects before judging: a stop while they wait out an outage leaves nothing written ahead
        retry = {"should_stop": self.stop_event.is_set, "on_retry": self._count_retry}
        write_batch(routed.rejects, wired.route_sinks, **retry)
        if routed.rejects.rejected:
            self.failpoints.hit("rejects-written")
        ahead = wired.write_ahead
        if ahead is not None:
            ahead.begin()
        result = process_batch(mine, self.detector, self.batch_config, now=now, load_state=_no_stored_state,
                               watermarks=self.watermarks, handoff=self.handoff, model=model,
                               on_judged=ahead.submit if ahead is not None else None,
                               judged_every=ahead.every if ahead is not None else 0)
        self.metrics.by_user_parses.labels("handed_over").inc(self.handoff.hits - hits)
        self.metrics.by_user_parses.labels("parsed").inc(self.handoff.misses - misses)
        for tid, judgement in result.judgements.items():
            self.partition_of[judgement.user_id] = result.originals[tid].partition
        inserted, existing = write_batch(result, wired.sinks, **retry)
        if result.consumed:
            self.failpoints.hit("mongodb-written")
        for tid in result.withdrawn:  # refused by the store or in conflict: not part of the user's history
            self.detector.forget(result.judgements[tid].user_id, tid, result.judgements[tid])
        touched = {j.user_id for j in result.judgements.values()}
        dropped = self.detector.state.take_dropped()
        state = state_messages(self.detector.export_packed(touched), dropped, self.partition_of)
        out = Outbound(by_user=routed.forward, by_user_timestamps=routed.forward_timestamps,
                       dlq=routed.rejects.dlq + result.dlq, enriched=result.enriched,
                       state=owned_state(state, self.assigned))
        for user in dropped:
            self.partition_of.pop(user, None)
        try:
            with_retry(lambda: wired.publisher.publish(out, offsets), sink="kafka-transaction", **retry)
            if result.consumed:
                self.failpoints.hit("committed")
        except CommitRefused as exc:
            # The group moved on while we wrote: the partitions' new owner judges the batch again from
            # the committed state. Ours now holds the batch's events, so it is rebuilt from the changelog.
            log.warning("transaction refused after a rebalance; the batch goes to the new owner: %s", exc)
            self._to_restore |= set(self.assigned)
        self.batches += 1
        self._forwarded = bool(routed.forward)
        self._record_metrics(result, routed.rejects, inserted, existing, started, wired)
        return result

    def _record_metrics(self, result: BatchResult, rejects: BatchResult, inserted: int, existing: int,
                        started: float, wired: Wired) -> None:
        m = self.metrics
        m.consumed.inc(rejects.consumed)
        m.stored.inc(inserted)
        m.duplicates.inc(existing)
        m.late.inc(result.late)
        for reason, n in (rejects.rejected_by_reason + result.rejected_by_reason).items():
            m.dlq.labels(reason).inc(n)
        for rule, n in result.alerts_by_rule.items():
            m.alerts.labels(rule).inc(n)
        for alert in result.suppressed:
            m.suppressed.labels(alert["rule"]).inc()
        for alert in result.shadow:
            m.shadow.labels(alert["rule"]).inc()
        m.batch_seconds.observe(time.perf_counter() - started)
        m.batch_size.observe(rejects.consumed + result.consumed)
        m.users_in_state.set(len(self.detector.state))
        lag = wired.source.lag()
        if lag is not None:
            m.lag.set(lag)
        log.debug("batch %d: %d routed, %d judged, %d stored, %d existing, %d alerts", self.batches,
                  rejects.consumed, result.consumed, inserted, existing, len(result.alerts))


def owned_state(state: list[tuple[int, Message]], assigned: list[int]) -> list[tuple[int, Message]]:
    """The changelog records of partitions this member owns. Nothing else should reach here; if a user
    of another partition ever did, its record would overwrite (or tombstone) the owner's state."""
    mine = set(assigned)
    kept = [(p, m) for p, m in state if p in mine]
    if len(kept) < len(state):
        log.error("%d state records for partitions not assigned to this member were not written",
                  len(state) - len(kept))
    return kept


def _no_stored_state(users: set[str]) -> dict[str, Any]:
    return {}  # every user of an assigned partition is in memory (restored from the changelog)


def run_processor(settings: Settings, *, max_idle_s: float | None = None, group_id: str | None = None) -> int:
    """Entry point of `txnmon stream`."""
    processor = Processor(settings, group_id=group_id)
    processor.install_signal_handlers()
    log.info("pid %d", os.getpid())
    return processor.run(max_idle_s=max_idle_s)
