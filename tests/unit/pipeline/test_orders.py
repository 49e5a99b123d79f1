"""The sinks' orders are data, and the runner applies each sink's outcome before the next runs."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from txnmon.core.batch import BatchConfig, BatchResult, SinkOutcome, process_batch
from txnmon.core.records import STORE_FAILED, Rejection, SourceRecord
from txnmon.core.rules import Detector, load_rules
from txnmon.pipeline import orders
from txnmon.pipeline.case_sink import CasesSink
from txnmon.pipeline.runner import write_batch
from txnmon.pipeline.sinks import (
    AlertsSink,
    NotificationsSink,
    RejectedSink,
    TouchedHoursSink,
    TransactionsSink,
    WatermarkSink,
)
from txnmon.settings import load_settings


class Routes:
    routes = None


class Store:
    """The sinks keep their store until they write; the case sink reads its window from its settings."""

    settings = load_settings()


def kinds(sinks):
    return [(type(s), getattr(s, "only_new", None)) for s in sinks]


def test_live_order_routes_alerts_after_storing_them_and_records_watermarks():
    got = orders.build_sinks(orders.LIVE, Store(), routes=Routes(), watermark_topic="by_user")
    assert kinds(got) == [(TransactionsSink, None), (RejectedSink, None), (AlertsSink, None),
                          (NotificationsSink, False), (CasesSink, None), (TouchedHoursSink, None),
                          (WatermarkSink, None)]


def test_replay_order_routes_new_alerts_before_storing_them_and_leaves_watermarks_alone():
    got = orders.build_sinks(orders.REPLAY, Store(), routes=Routes())
    assert kinds(got) == [(TransactionsSink, None), (RejectedSink, None), (NotificationsSink, True),
                          (AlertsSink, None), (CasesSink, None), (TouchedHoursSink, None)]
    quiet = orders.build_sinks(orders.REPLAY, Store(), routes=None)  # --no-notify
    assert NotificationsSink not in {type(s) for s in quiet} and len(quiet) == 5


def test_an_unknown_sink_or_a_watermark_sink_without_its_topic_is_refused():
    with pytest.raises(ValueError, match="unknown sink"):
        orders.build_sinks(("transactions", "audit"), Store())
    with pytest.raises(ValueError, match="watermark_topic"):
        orders.build_sinks(orders.LIVE, Store(), routes=Routes())


class Refusing:
    """A transactions sink that refuses the first transaction and has seen one other stored before."""

    name = "refusing"

    def write(self, batch):
        first = batch.transactions[0]["_id"]
        return SinkOutcome(withdraw={first: Rejection(STORE_FAILED, "too large")}, existing=1)


class Seeing:
    name = "seeing"

    def __init__(self):
        self.saw: list[str] = []

    def write(self, batch):
        self.saw = [d["_id"] for d in batch.transactions]


def judged_batch() -> BatchResult:
    """A real judged batch: three transactions of one user, the first one alerting."""
    settings = load_settings(metrics_port=0)
    rows = [{"transaction_id": f"T{i}", "user_id": "U1", "amount": 60_000 if i == 1 else 100,
             "payment_method": "UPI", "location": "Mumbai", "timestamp": f"2025-09-30T10:0{i}:00Z"} for i in (1, 2, 3)]
    records = [SourceRecord("transactions.raw", 0, i, b"U1", json.dumps(r).encode(), 0) for i, r in enumerate(rows)]
    return process_batch(records, Detector(load_rules(settings.rules_file)), BatchConfig.from_settings(settings),
                         now=dt.datetime(2025, 10, 1, tzinfo=dt.UTC), load_state=lambda users: {})


def test_the_runner_applies_an_outcome_before_the_next_sink_sees_the_batch():
    batch = judged_batch()
    assert batch.alerts and batch.alerts[0]["transaction_id"] == "T1"
    ids = [d["_id"] for d in batch.transactions]
    seeing = Seeing()
    inserted, existing = write_batch(batch, [Refusing(), seeing], should_stop=lambda: False)
    assert seeing.saw == ids[1:]  # the refused one never reached a later sink
    assert (inserted, existing) == (len(ids) - 2, 1)
    assert batch.withdrawn == [ids[0]] and batch.rejected[-1]["reason"] == STORE_FAILED
    assert all(a["transaction_id"] != ids[0] for a in batch.alerts)
