"""Which client errors are an outage (the same call may succeed later): one answer for the package."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from txnmon.adapters.kafka import client_errors
from txnmon.errors import KafkaUnavailable


def test_outages_are_retriable_and_fatal_or_refused_ones_are_not():
    assert client_errors._retriable(KafkaError(KafkaError._TRANSPORT))
    assert client_errors._retriable(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))  # not there yet
    assert not client_errors._retriable(KafkaError(KafkaError._TRANSPORT, fatal=True))
    assert not client_errors._retriable(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    assert not client_errors._retriable(None)


def test_the_client_error_is_read_from_the_exception():
    err = KafkaError(KafkaError._TIMED_OUT, "waited")
    assert client_errors._error(KafkaException(err)) is err
    assert client_errors._error(RuntimeError("other")) is None
    assert client_errors._why(err).startswith("_TIMED_OUT: ")
    assert len(client_errors._why(KafkaError(KafkaError._FAIL, "x" * 1000))) == 300


# --- the bounded retry of admin and offset reads ------------------------------------------------

TRANSIENT = [KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART,
             KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError._TIMED_OUT, KafkaError._TRANSPORT]


def test_a_read_waits_out_transient_errors_a_bounded_time():
    delays = client_errors.READ_RETRY_DELAYS_S
    for code in TRANSIENT:
        waits = [client_errors.read_retry_delay(KafkaError(code), n) for n in range(1, len(delays) + 2)]
        assert waits == [*delays, None], code
    assert list(delays) == sorted(delays) and delays[0] <= 0.1  # short first, growing
    assert 5 <= sum(delays) <= 15  # long enough for a leader election, short enough to fail clearly


def test_a_read_gives_up_at_once_on_errors_waiting_cannot_cure():
    for err in (KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED), KafkaError(KafkaError.MSG_SIZE_TOO_LARGE),
                KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION, fatal=True), None):
        assert client_errors.read_retry_delay(err, 1) is None


def flaky(codes, answer="done"):
    """A call that fails with each of `codes` in turn, then answers."""
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= len(codes):
            raise KafkaException(KafkaError(codes[len(calls) - 1]))
        return answer

    return call, calls


def test_retrying_read_answers_once_the_leader_is_there():
    call, calls = flaky([KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE])
    slept: list[float] = []
    assert client_errors.retrying_read(call, "end offsets", sleep=slept.append) == "done"
    assert len(calls) == 3 and slept == list(client_errors.READ_RETRY_DELAYS_S[:2])


def test_retrying_read_raises_the_translated_error_when_the_retries_are_spent():
    call, calls = flaky([KafkaError.NOT_LEADER_FOR_PARTITION] * 100)
    with pytest.raises(KafkaUnavailable, match="end offsets of t: NOT_LEADER_FOR_PARTITION") as raised:
        client_errors.retrying_read(call, "end offsets of t", delays=(0.0, 0.0), sleep=lambda s: None)
    assert len(calls) == 3 and isinstance(raised.value.__cause__, KafkaException)


def test_retrying_read_raises_other_client_errors_as_they_came():
    call, calls = flaky([KafkaError.TOPIC_AUTHORIZATION_FAILED])
    with pytest.raises(KafkaException):
        client_errors.retrying_read(call, "end offsets", sleep=lambda s: pytest.fail("no wait"))
    assert len(calls) == 1
