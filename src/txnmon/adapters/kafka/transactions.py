"""Exactly-once consume -> produce -> commit: the transactional producer, and begin, abort and commit
(with a group member's offsets) translated into txnmon's errors. Each blocking transactional call
runs on a helper thread with a deadline, because librdkafka can hang in one for ever after a
coordinator outage; a producer whose call never returned is given up (ProducerLost).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from confluent_kafka import KafkaException, Producer, TopicPartition

from txnmon.adapters.kafka.client_errors import _REBALANCED, _error, _retriable, _why
from txnmon.adapters.kafka.clients import _check_reachable, _producer_config
from txnmon.adapters.kafka.member import GroupMember, TopicPartitionKey
from txnmon.errors import CommitRefused, KafkaUnavailable, ProducerLost
from txnmon.settings import Settings

TXN_TIMEOUT_S = 10.0

# librdkafka can block in a transactional call far past the timeout it is given once the group
# coordinator went away and came back (confluentinc/librdkafka#5456 and #5511: coordinator requests'
# timeouts are never checked). Each such call runs on a helper thread; past TXN_TIMEOUT_S plus this
# grace the producer is given up (ProducerLost) and the caller replaces it.
TXN_GRACE_S = 5.0
# the first wait before a transactional request is sent again (see make_transactional_producer)
TXN_RETRY_BACKOFF_MS = 10


class TransactionalProducer(Producer):
    """A producer with a transactional.id; remembers where the current transaction stands so that
    `commit_member_transaction` and `begin_transaction` can be called again after a KafkaUnavailable."""

    offsets_sent: bool = False
    needs_abort: bool = False
    in_transaction: bool = False  # begun, and neither committed nor aborted yet
    lost: bool = False  # a call never returned: never call it again, not even close()
    began_at: float = 0.0  # time.monotonic() when the current transaction began
    timeout_s: float = 15.0  # its transaction.timeout.ms


def transactional_config(settings: Settings, transactional_id: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The transactional producer's options: txnmon's producer defaults, the transaction's own, then `overrides`."""
    # short: a batch begins its transaction only once MongoDB is written, and a broker outage then
    # costs one timeout per attempt, not minutes
    cfg = {"transaction.timeout.ms": 15_000,
           # A batch's transaction begins right after the previous one's commit, while the coordinator is
           # still writing that commit's markers: it answers AddOffsetsToTxn (and AddPartitionsToTxn) with
           # CONCURRENT_TRANSACTIONS, and librdkafka retries after retry.backoff.ms, 100 ms by default.
           # That wait was most of every batch's commit (send_offsets p50 85 ms, 12 ms with 10), and each
           # transaction crosses two batches (raw, then by-user). The backoff still grows exponentially
           # up to retry.backoff.max.ms (1 s) while a broker is down. The Java producer retries this
           # error after 20 ms for the same reason.
           "retry.backoff.ms": TXN_RETRY_BACKOFF_MS,
           **_producer_config(settings, overrides),
           "transactional.id": transactional_id}
    # librdkafka requires a message's delivery timeout to fit in the transaction's
    cfg["delivery.timeout.ms"] = min(cfg["delivery.timeout.ms"], cfg["transaction.timeout.ms"])
    return cfg


def make_transactional_producer(settings: Settings, transactional_id: str, **overrides: Any) -> TransactionalProducer:
    """A producer for exactly-once batches: produce, then `commit_member_transaction` with the input's offsets.

    init_transactions fences any earlier producer with the same transactional_id (a previous
    instance of this processor) and aborts what it left open.
    """
    cfg = transactional_config(settings, transactional_id, overrides)
    producer = TransactionalProducer(cfg)
    producer.timeout_s = cfg["transaction.timeout.ms"] / 1000
    _check_reachable(producer, settings)
    try:
        _bounded(producer, "init_transactions", lambda: producer.init_transactions(TXN_TIMEOUT_S))
    except KafkaException as exc:
        if _retriable(_error(exc)):
            raise KafkaUnavailable(f"init_transactions failed: {exc}") from exc
        raise
    return producer


def close_producer(producer: TransactionalProducer) -> None:
    """Release a transactional producer; one that is lost is left to its stuck call (closing it would block)."""
    if not producer.lost:
        producer.close()


def _bounded(producer: TransactionalProducer, what: str, call: Callable[[], Any]) -> Any:
    """`call()` (one blocking transactional call), or ProducerLost once it outlives its timeout plus
    TXN_GRACE_S: the thread is left to finish (or not) on its own, the producer is never used again."""
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append((False, exc))

    worker = threading.Thread(target=run, name=f"kafka-{what}", daemon=True)
    worker.start()
    worker.join(TXN_TIMEOUT_S + TXN_GRACE_S)
    if not outcome:
        producer.lost = True
        raise ProducerLost(f"{what} still blocked after {TXN_TIMEOUT_S + TXN_GRACE_S:.0f}s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _txn_failed(producer: TransactionalProducer, what: str, exc: KafkaException) -> NoReturn:
    """Translate a transactional API error (always raises)."""
    err = _error(exc)
    if err is not None and err.fatal():
        producer.lost = True
        raise ProducerLost(f"{what} failed for good: {_why(err)}") from exc
    if err is not None and err.txn_requires_abort():
        abort_transaction(producer)
        if err.code() in _REBALANCED:
            # the group moved on: the partitions' new owner gets the batch; retrying it here would
            # write it again under this member's stale (or new) generation
            raise CommitRefused(f"{what} refused, transaction aborted: {_why(err)}") from exc
        raise KafkaUnavailable(f"{what} failed, transaction aborted (retry the batch): {_why(err)}") from exc
    if _retriable(err):
        if producer.in_transaction and time.monotonic() - producer.began_at > producer.timeout_s:
            # The coordinator has aborted it by now, and librdkafka may still hold the abandoned call
            # (it answers every retry with _PREV_IN_PROGRESS, for ever): start over with a new producer.
            producer.lost = True
            raise ProducerLost(f"{what} failed ({_why(err) if err else exc}) with the transaction open "
                               f"past its {producer.timeout_s:.0f}s timeout") from exc
        raise KafkaUnavailable(f"{what} failed (call it again): {exc}") from exc
    raise exc


def begin_transaction(producer: TransactionalProducer) -> None:
    """Start a transaction (aborting first one that a failed abort left open)."""
    if producer.needs_abort:
        abort_transaction(producer)
    try:
        producer.begin_transaction()
    except KafkaException as exc:
        _txn_failed(producer, "begin_transaction", exc)
    producer.offsets_sent = False
    producer.in_transaction = True
    producer.began_at = time.monotonic()


def abort_transaction(producer: TransactionalProducer) -> None:
    """Abort the current transaction: none of its messages or offsets become visible."""
    try:
        _bounded(producer, "abort_transaction", lambda: producer.abort_transaction(TXN_TIMEOUT_S))
    except KafkaException as exc:
        producer.needs_abort = True
        err = _error(exc)
        if err is not None and err.fatal():
            producer.lost = True
            raise ProducerLost(f"abort_transaction failed for good: {_why(err)}") from exc
        if _retriable(err):
            if time.monotonic() - producer.began_at > producer.timeout_s:
                producer.lost = True  # as in _txn_failed: librdkafka may hold an abandoned call for ever
                raise ProducerLost(f"abort_transaction failed ({exc}) past the transaction's timeout") from exc
            raise KafkaUnavailable(f"abort_transaction failed (begin_transaction aborts again): {exc}") from exc
        raise
    producer.needs_abort = False
    producer.offsets_sent = False
    producer.in_transaction = False


def _commit(producer: TransactionalProducer, offsets: list[TopicPartition], group_metadata: Callable[[], Any]) -> None:
    try:
        if offsets and not producer.offsets_sent:
            _bounded(producer, "send_offsets_to_transaction",
                     lambda: producer.send_offsets_to_transaction(offsets, group_metadata(), TXN_TIMEOUT_S))
            producer.offsets_sent = True
        _bounded(producer, "commit_transaction", lambda: producer.commit_transaction(TXN_TIMEOUT_S))
    except KafkaException as exc:
        _txn_failed(producer, "commit_transaction", exc)
    producer.offsets_sent = False
    producer.in_transaction = False


def commit_member_transaction(producer: TransactionalProducer, member: GroupMember,
                              next_offsets: Mapping[TopicPartitionKey, int]) -> None:
    """Commit the open transaction together with the member's offsets ((topic, partition) -> next offset).

    KafkaUnavailable: an outage. If the transaction could be kept, call commit_member_transaction
    again; if it had to be aborted (the message says so) the caller retries the whole batch in a new
    transaction. CommitRefused: the group rebalanced, the transaction was aborted and the batch
    goes to the partitions' new owner. ProducerLost: replace the producer (fenced by a newer
    instance, or a call stuck in the client); whether the commit happened is then unknown.
    """
    _commit(producer, [TopicPartition(t, p, o) for (t, p), o in sorted(next_offsets.items())], member.group_metadata)
