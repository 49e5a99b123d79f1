"""The transactional producer's error handling: a call stuck in librdkafka, or a transaction that
outlived its timeout, gives the producer up (ProducerLost) instead of retrying it for ever."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from txnmon.adapters.kafka import transactions as kc
from txnmon.errors import KafkaUnavailable, ProducerLost

NOWHERE = {"bootstrap.servers": "127.0.0.1:9", "transactional.id": "unit-test"}


class Answers(kc.TransactionalProducer):
    """A producer whose transactional calls answer with `error` (or sleep `stuck_s`) without a broker."""

    error: int | None = None
    fatal: bool = False
    stuck_s: float = 0.0

    def send_offsets_to_transaction(self, *_args: object) -> None:
        time.sleep(self.stuck_s)
        if self.error is not None:
            raise KafkaException(KafkaError(self.error, fatal=self.fatal))

    def commit_transaction(self, *_args: object) -> None:
        if self.error is not None:
            raise KafkaException(KafkaError(self.error))


def producer(error: int | None = None, *, age_s: float = 0.0, stuck_s: float = 0.0) -> Answers:
    p = Answers(NOWHERE)
    p.error, p.stuck_s = error, stuck_s
    p.in_transaction, p.began_at = True, time.monotonic() - age_s
    return p


def commit(p: Answers) -> None:
    kc._commit(p, [TopicPartition("t", 0, 1)], lambda: None)


def test_a_retriable_error_inside_the_transaction_timeout_means_call_again():
    p = producer(KafkaError._TIMED_OUT, age_s=1.0)
    with pytest.raises(KafkaUnavailable) as raised:
        commit(p)
    assert not isinstance(raised.value, ProducerLost) and not p.lost and p.in_transaction


def test_retries_answered_prev_in_progress_past_the_timeout_give_the_producer_up():
    p = producer(KafkaError._PREV_IN_PROGRESS, age_s=p_timeout() + 1)
    with pytest.raises(ProducerLost, match="past its"):
        commit(p)
    assert p.lost


def test_a_call_stuck_past_its_timeout_gives_the_producer_up(monkeypatch):
    monkeypatch.setattr(kc, "TXN_TIMEOUT_S", 0.1)
    monkeypatch.setattr(kc, "TXN_GRACE_S", 0.1)
    p = producer(stuck_s=3.0)
    started = time.monotonic()
    with pytest.raises(ProducerLost, match="still blocked"):
        commit(p)
    assert time.monotonic() - started < 2.0
    assert p.lost
    kc.close_producer(p)  # a lost producer is left alone: this must not block on the stuck call


def test_a_fatal_error_gives_the_producer_up():
    p = producer(KafkaError._FENCED)
    p.fatal = True
    with pytest.raises(ProducerLost, match="for good"):
        commit(p)
    assert p.lost


def p_timeout() -> float:
    return kc.TransactionalProducer.timeout_s


def test_the_transactional_producer_retries_a_busy_coordinator_after_milliseconds_not_100():
    # each batch's transaction begins while the coordinator still writes the previous commit's markers:
    # CONCURRENT_TRANSACTIONS, retried after retry.backoff.ms (librdkafka's 100 ms: most of a batch's commit)
    from txnmon.settings import load_settings

    s = load_settings(kafka_bootstrap_servers="127.0.0.1:9")
    cfg = kc.transactional_config(s, "unit-test", {})
    assert cfg["retry.backoff.ms"] <= 20 and cfg["transactional.id"] == "unit-test"
    assert cfg["delivery.timeout.ms"] <= cfg["transaction.timeout.ms"]
    assert kc.transactional_config(s, "unit-test", {"retry.backoff.ms": 250})["retry.backoff.ms"] == 250
    kc.TransactionalProducer(cfg).flush(0)  # librdkafka takes the options (no broker is asked)
