"""`txnmon replay --from T --to T`: re-run a window of history through the pipeline.

Reads the raw topic's messages whose Kafka timestamps fall in the window with a group-less
consumer (nothing is committed, so the live group's offsets never move) and sends them through
the same validate / rules / enrich / write steps as the processor. Writes are idempotent: what
is stored already stays as it is, so a replay with unchanged rules adds nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from include import kafka_io, mongo_io
from include.config import Settings
from include.rules import Detector, load_rules
from streaming.metrics import ProcessorMetrics
from streaming.pipeline import process_batch
from streaming.sinks import write_batch

log = logging.getLogger("txnmon.replay")


@dataclass(frozen=True)
class WindowReplay:
    messages: int
    new_transactions: int
    already_stored: int
    rejected: int
    alerts: int


def replay_window(settings: Settings, start: dt.datetime, end: dt.datetime) -> WindowReplay:
    if end <= start:
        raise ValueError("--to must be after --from")
    db = mongo_io.get_db(settings)
    detector = Detector(load_rules(settings.rules_file))
    metrics = ProcessorMetrics()
    window = kafka_io.open_window(settings, settings.topic_raw, int(start.timestamp() * 1000),
                                  int(end.timestamp() * 1000))
    producer = kafka_io.make_producer(settings)
    totals = {"messages": 0, "new": 0, "existing": 0, "rejected": 0, "alerts": 0}
    try:
        idle_polls = 0
        while not kafka_io.window_done(window) and idle_polls < 50:
            records = kafka_io.poll_window(window, settings.poll_timeout_ms, settings.batch_max_records)
            if not records:
                idle_polls += 1
                continue
            idle_polls = 0
            result = process_batch(records, detector, settings, now=dt.datetime.now(dt.UTC),
                                   load_state=lambda users: mongo_io.load_user_state(db, users))
            result.user_state = {}  # the live processor owns user_state; a replay only reads it
            inserted, existing = write_batch(result, db=db, producer=producer,
                                             topic_enriched=settings.topic_enriched, topic_dlq=settings.topic_dlq,
                                             should_stop=lambda: False, metrics=metrics)
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
