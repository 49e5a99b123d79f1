"""`txnmon replay --from T --to T`: re-run a window of history through the pipeline.

Reads the by-user topic (every valid message, re-keyed by user, in the order each user's events
arrived) with a group-less consumer: nothing is committed, so the live group's offsets never
move. Each user is judged from the start of the window minus the rules' longest look-back, so a
message in the window meets the same history it met live, and gets the same verdicts. Only the
window's results are written, to MongoDB, idempotently: what is stored already stays as it is, so
a replay with unchanged rules adds nothing. Messages that were rejected when they arrived are in
the `rejected` collection (`txnmon dlq`), not in the by-user topic.

An alert the replay raises goes into its user's case (idempotent: an alert already in a case stays
there). An alert that is new (no stored alert has its id: the processor never judged that message,
its results were lost, or the rules changed) is also routed to the notifications outbox as the
routes file says; one stored before is not, so enabling a route and replaying pages nobody for old
alerts. `notify=False` (`--no-notify`) routes nothing: a backfill with new rules whose alerts nobody
should be paged for now.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.core.batch import BatchConfig, process_batch
from txnmon.core.rules import Detector, load_rules
from txnmon.core.watermark import Watermarks
from txnmon.errors import TxnmonError, UsageError
from txnmon.jobs.lists import live_lists, record_rules_version
from txnmon.notifications.outbox import RoutesFeed
from txnmon.pipeline import orders
from txnmon.pipeline.runner import write_batch
from txnmon.settings import Settings

log = logging.getLogger("txnmon.replay")
STALL_S = 60.0  # no message for this long before the end offsets: the read failed


@dataclass(frozen=True)
class WindowReplay:
    messages: int
    new_transactions: int
    already_stored: int
    rejected: int
    alerts: int


class WindowIncomplete(TxnmonError):
    """The window could not be read to the end offsets captured when the replay started."""


def replay_window(settings: Settings, start: dt.datetime, end: dt.datetime, *,
                  stall_s: float = STALL_S, notify: bool = True) -> WindowReplay:
    """Re-run the messages of [start, end): every one of them, up to the end offsets captured when
    the replay starts, or WindowIncomplete (what was written stays: the writes are idempotent)."""
    if end <= start:
        raise UsageError("--to must be after --from")
    store = MongoStore(settings)
    # a bad routes file stops the replay before anything is written (as it stops the processor's start)
    routes = (RoutesFeed(settings.notify_routes_file, allowed_hosts=settings.notify_allowed_host_list)
              if notify else None)
    detector = Detector(load_rules(settings.rules_file))
    # as the processor does between batches: today's lists (blocked users, trusted pairs: a trusted user's
    # hits are suppressed, not raised and routed), and the rules version in rule_versions, so a backfill
    # with another rules file leaves its alert names known to the quality suite and `rules_version` lookups
    detector.use_lists(live_lists(store))
    record_rules_version(store, detector.version, settings.rules_file, by="replay")
    model = None
    if "model_score" in detector.ruleset.used_signals():  # as the processor: scored only when weighed
        from txnmon.jobs.models import in_use  # (pandas with it: only when a typology weighs the model)

        model = in_use(settings, detector.ruleset)
    config = BatchConfig.from_settings(settings)
    start_ms = int(start.timestamp() * 1000)
    warm_up = detector.ruleset.history_window()
    window = kafka.open_window(settings, settings.topic_by_user, int((start - warm_up).timestamp() * 1000),
                               int(end.timestamp() * 1000))
    sinks = orders.build_sinks(orders.REPLAY, store, routes=routes)  # why this order: pipeline.orders
    marks = Watermarks()
    totals = {"messages": 0, "new": 0, "existing": 0, "rejected": 0, "alerts": 0}
    try:
        progress_at = time.monotonic()
        while not kafka.window_done(window):
            records = kafka.poll_window(window, settings.poll_timeout_ms, settings.batch_max_records)
            if not records:
                if time.monotonic() - progress_at > stall_s:
                    raise WindowIncomplete(
                        f"window replay read {totals['messages']:,} messages, then nothing for {stall_s:.0f}s before "
                        f"reaching the end offsets {window.stop_offsets} of {settings.topic_by_user}; what was "
                        "replayed is stored (idempotent), run it again")
                continue
            progress_at = time.monotonic()
            result = process_batch(records, detector, config, now=dt.datetime.now(dt.UTC),
                                   load_state=lambda users: {}, watermarks=marks, model=model)
            # the look-back before the window only rebuilds the users' history: written is the window
            result.keep_only(lambda record: record.timestamp_ms >= start_ms)
            inserted, existing = write_batch(result, sinks, should_stop=lambda: False)
            for tid in result.withdrawn:  # refused, in conflict or a re-send: out of the history, as live
                detector.forget(result.judgements[tid].user_id, tid, result.judgements[tid])
            totals["messages"] += result.consumed
            totals["new"] += inserted
            totals["existing"] += existing
            totals["rejected"] += len(result.rejected)
            totals["alerts"] += len(result.alerts)
    finally:
        window.consumer.close()
    log.info("window replay %s .. %s: %s", start, end, totals)
    return WindowReplay(totals["messages"], totals["new"], totals["existing"], totals["rejected"], totals["alerts"])
