"""The processor loop without a broker: list-in, list-out doubles (tests/fixtures/doubles.py)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from include.config import load_settings
from include.errors import StopRequested, StoreUnavailable
from include.jobs import store_batch
from streaming.processor import Processor
from tests.fixtures.doubles import FlakySink, ListSink, ListSource, record, wired


def row(tid: str, minute: int, amount: float = 100, user: str = "U1") -> dict:
    return {"transaction_id": tid, "user_id": user, "amount": amount, "payment_method": "UPI",
            "location": "Mumbai", "timestamp": f"2025-09-30T10:{minute:02d}:00Z"}


@pytest.fixture
def settings():
    return load_settings(metrics_port=0)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(store_batch.time, "sleep", lambda s: None)


def test_every_batch_is_written_then_committed(settings):
    source = ListSource([[record(0, row("T1", 0, 60_000)), record(1, b"not json")], [record(2, row("T2", 1))]])
    sink = ListSink()
    assert Processor(settings, wiring=wired(source, [sink])).run(max_idle_s=0) == 0
    assert [d["_id"] for d in sink.transactions] == ["T1", "T2"]
    assert [a["_id"] for a in sink.alerts] == ["T1:high_amount"]
    assert [dict(m[2])["txnmon.reason"] for m in sink.dlq] == [b"not_json"]
    assert source.commits == [{0: 2}, {0: 3}]
    assert source.closed


def test_an_outage_is_retried_and_the_commit_waits_for_it(settings):
    source = ListSource([[record(0, row("T1", 0))]])
    flaky, after = FlakySink(failures=3), ListSink()
    processor = Processor(settings, wiring=wired(source, [flaky, after]))
    processor.run(max_idle_s=0)
    assert flaky.attempts == 4 and len(after.batches) == 1
    assert source.commits == [{0: 1}]
    assert processor.metrics.retries.labels("flaky")._value.get() == 3


def test_a_stop_during_an_outage_leaves_the_batch_uncommitted(settings):
    source = ListSource([[record(0, row("T1", 0))]])
    processor = Processor(settings, wiring=wired(source, [FlakySink(failures=10**9)]))
    stopper = threading.Timer(0.2, processor.request_stop)
    stopper.start()
    assert processor.run(max_idle_s=5) == 0
    assert source.commits == []


def test_a_non_outage_error_is_not_retried(settings):
    class Broken(ListSink):
        name = "broken"

        def write(self, batch):
            raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        store_batch.with_retry(lambda: Broken().write(None), sink="broken", should_stop=lambda: False)


def test_with_retry_gives_up_only_when_asked_to_stop():
    calls = []

    def down():
        calls.append(1)
        raise StoreUnavailable("no server")

    with pytest.raises(StopRequested):
        store_batch.with_retry(down, sink="mongodb", should_stop=lambda: len(calls) >= 3)
    assert len(calls) == 3


def test_users_are_judged_with_their_stored_state(settings):
    # the loader's state (a restart) counts toward velocity: 3 stored + 1 new > 3
    stored = {"U1": {"events": [[dt.datetime(2025, 9, 30, 10, m, tzinfo=dt.UTC), f"P{m}", "Mumbai", 100.0,
                                 "purchase", "success"] for m in range(3)], "raised": {}}}
    source = ListSource([[record(0, row("T4", 4))]])
    sink = ListSink()
    Processor(settings, wiring=wired(source, [sink], state=stored)).run(max_idle_s=0)
    assert [a["_id"] for a in sink.alerts] == ["T4:velocity"]
