"""Client errors in txnmon's terms: which librdkafka error codes are an outage, a rebalance or the end
of a consumer, and the helpers every other module of this package uses to read them. Kept in one
place so that "may the same call succeed later?" has one answer for producers, consumers and admin
calls alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from confluent_kafka import KafkaError as _Err
from confluent_kafka import KafkaException

from txnmon.errors import KafkaUnavailable
from txnmon.settings import Settings

log = logging.getLogger("txnmon.adapters.kafka")
T = TypeVar("T")

# `except kafka.KafkaError` keeps working: every client error is a KafkaException, whose
# `.args[0]` is a confluent_kafka.KafkaError with .code(), .retriable(), .fatal(), .txn_requires_abort().
KafkaError = KafkaException

# Errors where the same call may succeed later. librdkafka flags only some errors as retriable
# (KafkaError.retriable()): these codes are outages whatever the call (kafka-python's RetriableError).
_RETRIABLE = frozenset({
    _Err._TRANSPORT, _Err._TIMED_OUT, _Err._TIMED_OUT_QUEUE, _Err._MSG_TIMED_OUT, _Err._ALL_BROKERS_DOWN,
    _Err._WAIT_COORD, _Err._RESOLVE, _Err._RETRY, _Err._WAIT_CACHE, _Err._NODE_UPDATE, _Err._IN_PROGRESS,
    _Err._PREV_IN_PROGRESS, _Err._UNKNOWN_BROKER, _Err._ISR_INSUFF, _Err._OUTDATED,
    _Err.REQUEST_TIMED_OUT, _Err.NETWORK_EXCEPTION, _Err.BROKER_NOT_AVAILABLE, _Err.LEADER_NOT_AVAILABLE,
    _Err.NOT_LEADER_FOR_PARTITION, _Err.NOT_ENOUGH_REPLICAS, _Err.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    _Err.KAFKA_STORAGE_ERROR, _Err.COORDINATOR_NOT_AVAILABLE, _Err.COORDINATOR_LOAD_IN_PROGRESS,
    _Err.NOT_COORDINATOR, _Err.CONCURRENT_TRANSACTIONS, _Err.THROTTLING_QUOTA_EXCEEDED,
    _Err.FENCED_LEADER_EPOCH, _Err.UNKNOWN_LEADER_EPOCH, _Err.OFFSET_NOT_AVAILABLE, _Err.REPLICA_NOT_AVAILABLE,
    _Err.PREFERRED_LEADER_NOT_AVAILABLE, _Err.UNSTABLE_OFFSET_COMMIT, _Err.REBOOTSTRAP_REQUIRED,
    # a topic not (yet, or no longer) there: kafka-python waited for its metadata, then timed out
    _Err.UNKNOWN_TOPIC_OR_PART, _Err._UNKNOWN_TOPIC,
})

# The answer for a topic that does not exist (an admin call's "no such topic", not an outage)
_MISSING = frozenset({_Err.UNKNOWN_TOPIC_OR_PART, _Err._UNKNOWN_TOPIC})

# A commit (or a transaction's offsets) refused because the group moved on without this member:
# kafka-python's CommitFailedError. The partitions' new owner gets the batch again.
_REBALANCED = frozenset({
    _Err.REBALANCE_IN_PROGRESS, _Err.ILLEGAL_GENERATION, _Err.UNKNOWN_MEMBER_ID, _Err._ASSIGNMENT_LOST,
    _Err.STALE_MEMBER_EPOCH, _Err.FENCED_MEMBER_EPOCH,
})

# Consumer events that stop a consumer for good (kafka-python raised these from poll).
_POLL_RAISES = frozenset({
    _Err.TOPIC_AUTHORIZATION_FAILED, _Err.GROUP_AUTHORIZATION_FAILED, _Err._AUTHENTICATION,
    _Err.SASL_AUTHENTICATION_FAILED, _Err.CLUSTER_AUTHORIZATION_FAILED, _Err._SSL,
})


def _error(exc: BaseException) -> _Err | None:
    arg = exc.args[0] if exc.args else None
    return arg if isinstance(arg, _Err) else None


def _retriable(err: _Err | None) -> bool:
    return err is not None and (err.retriable() or err.code() in _RETRIABLE) and not err.fatal()


def _why(err: _Err) -> str:
    return f"{err.name()}: {err.str()}"[:300]


def _unavailable(settings: Settings) -> KafkaUnavailable:
    return KafkaUnavailable(f"no Kafka broker answers at {settings.kafka_bootstrap_servers}")


# Admin and offset reads wait a little through transient errors: right after a topic is created its
# partitions' leaders are still being elected (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE; it
# killed a `make bench` run), and right after a broker's first start the offsets topic is still
# being created (COORDINATOR_*). Short and bounded (about 9 s in all): a read is asked by a person,
# a DAG task or a bench step that should fail with a clear error, not hang.
READ_RETRY_DELAYS_S: tuple[float, ...] = (0.1, 0.2, 0.4, 0.8, 1.5, 2.0, 2.0, 2.0)


def read_retry_delay(err: _Err | None, attempt: int, delays: Sequence[float] | None = None) -> float | None:
    """After failed attempt number `attempt` (1-based) with `err`: the seconds to wait before the next
    one, or None to give up (an error the same call cannot outlive, or the retries are spent)."""
    delays = READ_RETRY_DELAYS_S if delays is None else delays
    if not _retriable(err) or attempt > len(delays):
        return None
    return delays[attempt - 1]


def retrying_read(call: Callable[[], T], what: str, *, delays: Sequence[float] | None = None,
                  sleep: Callable[[float], None] | None = None) -> T:
    """`call()`, tried again (see `read_retry_delay`) while it fails with a transient client error.
    Still failing so: KafkaUnavailable. A client error that waiting cannot cure is raised as it came
    (a `KafkaError`), so the caller's handling of it is unchanged."""
    attempt = 1
    while True:
        try:
            return call()
        except KafkaException as exc:
            err = _error(exc)
            if err is None or not _retriable(err):
                raise
            delay = read_retry_delay(err, attempt, delays)
            if delay is None:
                raise KafkaUnavailable(f"{what}: {_why(err)} (after {attempt} attempts)") from exc
            log.info("%s: %s; trying again in %.1fs", what, _why(err), delay)
            (sleep or time.sleep)(delay)
            attempt += 1
