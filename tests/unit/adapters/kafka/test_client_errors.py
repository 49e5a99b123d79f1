"""Which client errors are an outage (the same call may succeed later): one answer for the package."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from txnmon.adapters.kafka import client_errors


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
