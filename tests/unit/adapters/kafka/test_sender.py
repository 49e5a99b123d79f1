"""The sender's per-send waiting (`Pending`): pure, with librdkafka's own error objects and no broker."""

from __future__ import annotations

import threading
import time

from confluent_kafka import KafkaError
from hypothesis import given
from hypothesis import strategies as st

from txnmon.adapters.kafka import sender as sender_module
from txnmon.adapters.kafka.sender import ConfirmedSender, Pending
from txnmon.settings import load_settings

TIMED_OUT = KafkaError(KafkaError._MSG_TIMED_OUT)
TOO_LARGE = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
FATAL = KafkaError(KafkaError._FATAL, "fenced", fatal=True)


def test_a_send_with_every_report_is_done_at_once_and_reads_each_fate():
    p = Pending(4)
    for i, err in enumerate([None, TIMED_OUT, TOO_LARGE, None]):
        assert not p.wait(0)
        p.report(i, err)
    assert p.wait(0)
    out = p.outcome()
    assert (out.failed, list(out.refused), out.fatal) == ([1], [2], None)


def test_a_deadline_without_reports_counts_the_missing_ones_as_not_acknowledged():
    p = Pending(3)
    p.report(0, None)
    started = time.monotonic()
    assert p.wait(0.05) is False
    assert time.monotonic() - started < 1
    assert p.outcome().failed == [1, 2]


def test_the_wait_ends_when_the_last_report_arrives_from_another_thread():
    p = Pending(2)
    p.report(0, None)
    threading.Timer(0.05, p.report, (1, None)).start()
    started = time.monotonic()
    assert p.wait(5)
    assert time.monotonic() - started < 2 and p.outcome().failed == []


def test_messages_never_queued_settle_the_send_failed_or_refused():
    p = Pending(3)
    p.report(0, None)
    p.not_queued(1, "MSG_SIZE_TOO_LARGE: too large")
    p.not_queued(2)
    assert p.wait(0)
    out = p.outcome()
    assert out.failed == [2] and out.refused == {1: "MSG_SIZE_TOO_LARGE: too large"}


def test_a_fatal_report_fails_its_message_and_names_the_error():
    p = Pending(2)
    p.report(0, FATAL)
    p.report(1, None)
    out = p.outcome()
    assert out.failed == [0] and out.fatal is FATAL and not out.refused


def test_an_empty_send_is_done_and_a_second_report_changes_nothing():
    assert Pending(0).wait(0)
    p = Pending(1)
    p.report(0, None)
    p.report(0, TIMED_OUT)
    assert p.outcome().failed == []


@given(st.lists(st.sampled_from(["ok", "late", "timeout", "refused", "missing"]), max_size=30))
def test_every_message_has_exactly_one_fate(fates):
    p = Pending(len(fates))
    errors = {"ok": None, "timeout": TIMED_OUT, "refused": TOO_LARGE}
    for i, fate in enumerate(fates):
        if fate in errors:
            p.report(i, errors[fate])
    assert p.wait(0) == all(f in errors for f in fates)
    out = p.outcome()
    assert sorted(out.failed + list(out.refused)) == [i for i, f in enumerate(fates) if f != "ok"]
    assert set(out.refused) == {i for i, f in enumerate(fates) if f == "refused"}


# After an idempotent producer's fatal error librdkafka fails the queued messages with local codes and
# no fatal flag: sending them again may succeed, so they must never be answered "refused" (dropped).
LOCAL_AFTER_FATAL = [KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT, KafkaError._INCONSISTENT,
                     KafkaError._FATAL, KafkaError._STATE, KafkaError._FAIL, KafkaError._DESTROY]


def test_local_errors_after_a_fatal_error_fail_retriably_never_refused():
    p = Pending(len(LOCAL_AFTER_FATAL))
    for i, code in enumerate(LOCAL_AFTER_FATAL):
        p.report(i, KafkaError(code))
    out = p.outcome()
    assert out.refused == {} and out.failed == list(range(len(LOCAL_AFTER_FATAL)))


@given(st.sampled_from([c for n, c in vars(KafkaError).items() if n.startswith("_") and isinstance(c, int)
                        and c < 0]))
def test_every_local_error_code_is_failed_not_refused(code):
    p = Pending(1)
    p.report(0, KafkaError(code))
    assert p.outcome().failed == [0] and not p.outcome().refused


def test_a_brokers_permanent_refusals_of_the_message_stay_refused():
    codes = [KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD, KafkaError.INVALID_TIMESTAMP]
    p = Pending(len(codes))
    for i, code in enumerate(codes):
        p.report(i, KafkaError(code))
    assert sorted(p.outcome().refused) == [0, 1, 2]


def test_broker_errors_not_about_the_message_fail_retriably_and_a_lost_producer_state_is_fatal():
    # an ACL mistake or the idempotent producer's lost sequence says nothing about the record: answered
    # "refused", the client would drop records that a resend after the fix delivers
    codes = [KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED,
             KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, KafkaError.PRODUCER_FENCED, KafkaError.UNKNOWN_PRODUCER_ID]
    p = Pending(len(codes))
    for i, code in enumerate(codes):
        p.report(i, KafkaError(code))
    out = p.outcome()
    assert out.refused == {} and out.failed == [0, 1, 2, 3, 4]
    assert out.fatal is not None and out.fatal.code() == KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER


class FakeProducer:
    """Just what ConfirmedSender calls; delivery callbacks are kept for the test to fire."""

    def __init__(self, error_cb):
        self.error_cb, self.callbacks = error_cb, []

    def poll(self, timeout=0):
        time.sleep(min(timeout, 0.01))
        return 0

    def produce(self, topic, value=None, key=None, headers=None, on_delivery=None):
        self.callbacks.append(on_delivery)

    def __len__(self):
        return 0

    def flush(self, timeout=None):
        return 0


def test_a_retiring_producers_fatal_reports_do_not_break_its_healthy_successor(monkeypatch):
    made = []

    def make_producer(_settings, **config):
        made.append(FakeProducer(config["error_cb"]))
        return made[-1]

    monkeypatch.setattr(sender_module, "make_producer", make_producer)
    sender = ConfirmedSender(load_settings(metrics_port=0), timeout_s=5)
    try:
        in_flight = threading.Thread(target=sender.send, args=("t", [(b"k", b"v", None)]))
        in_flight.start()  # a send on the first producer, waiting for its report
        deadline = time.monotonic() + 5
        while not made[0].callbacks and time.monotonic() < deadline:
            time.sleep(0.01)
        made[0].error_cb(FATAL)  # the first producer fails for good ...
        assert sender.send("t", []) == [] and len(made) == 2  # ... and the next send replaces it
        made[0].error_cb(FATAL)  # late: the retiring producer's error callback, again
        made[0].callbacks[0](KafkaError(KafkaError._FATAL, "fenced", fatal=True), None)  # and its report
        in_flight.join(5)
        assert not in_flight.is_alive()
        sender.send("t", [])
        assert len(made) == 2  # the healthy second producer is kept
        made[1].error_cb(FATAL)  # the current producer's own fatal error still replaces it
        sender.send("t", [])
        assert len(made) == 3
    finally:
        sender.close(1)


def test_a_fatal_error_reported_while_the_new_producer_is_made_is_its_own(monkeypatch):
    # making a producer may poll it; a fatal error it reports then must mark it broken, not be taken for
    # the replaced producer's (it was dropped: the broken producer stayed, every send failing until restart)
    made = []

    def make_producer(_settings, **config):
        made.append(FakeProducer(config["error_cb"]))
        if len(made) == 2:
            config["error_cb"](FATAL)
        return made[-1]

    monkeypatch.setattr(sender_module, "make_producer", make_producer)
    sender = ConfirmedSender(load_settings(metrics_port=0), timeout_s=5)
    try:
        made[0].error_cb(FATAL)
        sender.send("t", [])
        assert len(made) == 2
        sender.send("t", [])  # the second producer failed while being made: the next send replaces it
        assert len(made) == 3
    finally:
        sender.close(1)
