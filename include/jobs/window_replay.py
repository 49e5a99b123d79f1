"""`txnmon replay --from T --to T`: re-run a window of history through the pipeline.

Reads the raw topic's messages whose Kafka timestamps fall in the window with a group-less
consumer (nothing is committed, so the live group's offsets never move) and sends them through
the same validate / rules / enrich / write steps as the processor. Writes are idempotent: what
is stored already stays as it is, so a replay with unchanged rules adds nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from include.config import Settings
from include.connectors import kafka
from include.connectors.mongo import MongoStore
from include.core.batch import BatchConfig, process_batch
from include.core.rules import Detector, load_rules
from include.errors import TxnmonError, UsageError
from include.jobs.store_batch import default_sinks, write_batch

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
                  stall_s: float = STALL_S) -> WindowReplay:
    """Re-run the messages of [start, end): every one of them, up to the end offsets captured when
    the replay starts, or WindowIncomplete (what was written stays: the writes are idempotent)."""
    if end <= start:
        raise UsageError("--to must be after --from")
    store = MongoStore(settings)
    detector = Detector(load_rules(settings.rules_file))
    config = BatchConfig.from_settings(settings)
    window = kafka.open_window(settings, settings.topic_raw, int(start.timestamp() * 1000),
                                  int(end.timestamp() * 1000))
    producer = kafka.make_producer(settings)
    # the live processor owns user_state; a replay only reads it
    sinks = default_sinks(store, producer, settings.topic_enriched, settings.topic_dlq, save_user_state=False)
    totals = {"messages": 0, "new": 0, "existing": 0, "rejected": 0, "alerts": 0}
    try:
        progress_at = time.monotonic()
        while not kafka.window_done(window):
            records = kafka.poll_window(window, settings.poll_timeout_ms, settings.batch_max_records)
            if not records:
                if time.monotonic() - progress_at > stall_s:
                    raise WindowIncomplete(
                        f"window replay read {totals['messages']:,} messages, then nothing for {stall_s:.0f}s before "
                        f"reaching the end offsets {window.stop_offsets} of {settings.topic_raw}; what was replayed "
                        "is stored (idempotent), run it again")
                continue
            progress_at = time.monotonic()
            result = process_batch(records, detector, config, now=dt.datetime.now(dt.UTC),
                                   load_state=store.load_user_state)
            inserted, existing = write_batch(result, sinks, should_stop=lambda: False)
            totals["messages"] += result.consumed
            totals["new"] += inserted
            totals["existing"] += existing
            totals["rejected"] += len(result.rejected)
            totals["alerts"] += len(result.alerts)
    finally:
        window.consumer.close()
        producer.close()
    log.info("window replay %s .. %s: %s", start, end, totals)
    return WindowReplay(totals["messages"], totals["new"], totals["existing"], totals["rejected"], totals["alerts"])
