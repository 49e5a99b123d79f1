"""The sender's per-send waiting (`Pending`): pure, with librdkafka's own error objects and no broker."""

from __future__ import annotations

import threading
import time

from confluent_kafka import KafkaError
from hypothesis import given
from hypothesis import strategies as st

from txnmon.adapters.kafka.sender import Pending

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
