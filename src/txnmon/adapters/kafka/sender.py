"""Confirmed sends shared by concurrent callers (the HTTP service's requests): one idempotent producer,
served by a background poll thread, and each caller waits only for its own messages' delivery reports.

`send_confirmed` (produce.py) flushes the whole producer, so a caller waits for every other caller's
messages too; under concurrent requests each one waited for all. Here each send registers a `Pending`
(its messages' reports, filled in by the poll thread's delivery callbacks) and waits on it, with a
deadline: a message without a report by then counts as not acknowledged (the caller answers 503 and
the client sends it again; librdkafka's own `delivery.timeout.ms` is set to the same budget, so a report
normally comes before the deadline and a timed-out message is not sent later behind the caller's back).

A fatal producer error (the idempotent producer cannot go on, e.g. fenced or out of sequence) marks the
producer broken: the sends in flight fail (retriable), and the next send replaces the producer with a
new one instead of leaving the service failing for ever. Each producer has a generation: a fatal error
reported by a replaced (retiring) producer does not mark its healthy successor broken.

A delivery error is "refused for good" (the client drops the record) only when it says this very
message is unacceptable (too large, invalid, a bad timestamp: `MESSAGE_REFUSALS`); any other error,
local (librdkafka's negative codes, e.g. the purges that follow a fatal error) or from a broker (an
authorization mistake, the idempotent producer's sequence or epoch lost), fails it retriably: sending it
again once the cause is fixed succeeds, and a record answered "refused" is one the client drops.
Delivery reports carry no fatal flag, so the producer-state codes (`PRODUCER_STATE_LOST`) also mark the
producer broken.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException, Producer

from txnmon.adapters.kafka.client_errors import _Err, _error, _retriable, _why
from txnmon.adapters.kafka.clients import check_reachable, make_producer
from txnmon.core.records import Message
from txnmon.errors import MessageRefused
from txnmon.settings import Settings

log = logging.getLogger("txnmon.adapters.kafka")
POLL_S = 0.05
GRACE_S = 2.0  # the wait lasts this much longer than librdkafka's delivery timeout, for its report to arrive


@dataclass
class Outcome:
    """What became of one send: indexes not acknowledged (a retry may succeed), indexes refused for good
    (with why), and the fatal error that broke the producer, if any."""

    failed: list[int] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)
    fatal: Any = None


class Pending:
    """One send's messages in flight: delivery reports arrive from the poll thread (`report`), the
    caller `wait`s for all of them or a deadline, then reads the `outcome`. Pure: no client."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._reports: dict[int, Any] = {}
        self._unsent: dict[int, str | None] = {}  # never queued: refused (why) or not queued (None)
        self._lock = threading.Lock()
        self._done = threading.Event()
        if count == 0:
            self._done.set()

    def _settle(self) -> None:
        if len(self._reports) + len(self._unsent) >= self._count:
            self._done.set()

    def report(self, index: int, err: Any, _msg: Any = None) -> None:
        """The delivery callback: `err` None means acknowledged. A second report for an index is ignored."""
        with self._lock:
            if index not in self._reports and index not in self._unsent:
                self._reports[index] = err
                self._settle()

    def not_queued(self, index: int, refused_why: str | None = None) -> None:
        """The message never reached the producer's queue: refused for good (why), or to be sent again."""
        with self._lock:
            if index not in self._reports:
                self._unsent[index] = refused_why
                self._settle()

    def wait(self, timeout_s: float) -> bool:
        """True once every message has its report; False when `timeout_s` passed first."""
        return self._done.wait(timeout_s)

    def outcome(self) -> Outcome:
        """Each index's fate now; an index with no report yet counts as not acknowledged."""
        out = Outcome()
        with self._lock:
            reports, unsent = dict(self._reports), dict(self._unsent)
        for i in range(self._count):
            if i in unsent:
                if unsent[i] is None:
                    out.failed.append(i)
                else:
                    out.refused[i] = unsent[i]
                continue
            if i not in reports:
                out.failed.append(i)
                continue
            err = reports[i]
            if err is None:
                continue
            if err.fatal() or err.code() == _Err._FATAL or err.code() in PRODUCER_STATE_LOST:
                out.fatal = out.fatal or err
                out.failed.append(i)
            elif _refused_for_good(err):
                out.refused[i] = _why(err)
            else:
                out.failed.append(i)
        return out


# what a broker says of one message that sending it again cannot change
MESSAGE_REFUSALS = frozenset({_Err.INVALID_MSG, _Err.INVALID_MSG_SIZE, _Err.MSG_SIZE_TOO_LARGE,
                              _Err.RECORD_LIST_TOO_LARGE, _Err.INVALID_TIMESTAMP,
                              _Err.UNSUPPORTED_FOR_MESSAGE_FORMAT, _Err.INVALID_RECORD})
# the idempotent producer lost its sequence or epoch: this producer can send no more
PRODUCER_STATE_LOST = frozenset({_Err.OUT_OF_ORDER_SEQUENCE_NUMBER, _Err.INVALID_PRODUCER_EPOCH,
                                 _Err.UNKNOWN_PRODUCER_ID, _Err.PRODUCER_FENCED})


def _refused_for_good(err: Any) -> bool:
    """Only an error about this very message (`MESSAGE_REFUSALS`) is refused for good: the client drops
    it. Anything else is this process's or the cluster's trouble, not the record's (after an idempotent
    producer's fatal error librdkafka fails the queued messages with _PURGE_QUEUE, _PURGE_INFLIGHT,
    _INCONSISTENT... and the sent ones with OUT_OF_ORDER_SEQUENCE_NUMBER or PRODUCER_FENCED; a missing
    ACL is TOPIC_AUTHORIZATION_FAILED): those records must be sent again (503), never dropped."""
    return err.code() in MESSAGE_REFUSALS


class ConfirmedSender:
    """An idempotent producer for concurrent callers, each waiting for its own acknowledgements only."""

    def __init__(self, settings: Settings, *, timeout_s: float, **overrides: Any) -> None:
        self._timeout_s = timeout_s
        self._make_with: Callable[..., Producer] = functools.partial(
            make_producer, settings, **{"delivery.timeout.ms": int(timeout_s * 1000), **overrides})
        self._lock = threading.RLock()  # re-entrant: making a producer may poll it, which may call _on_error
        self._broken: Any = None
        self._retiring: list[tuple[Producer, float]] = []
        # which producer a fatal error came from: a retiring one's late reports must not break its successor
        self._generation = 0
        self._producer = self._make(self._generation)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="txnmon-producer-poll", daemon=True)
        self._thread.start()

    def _make(self, generation: int) -> Producer:
        return self._make_with(error_cb=functools.partial(self._on_error, generation=generation))

    def _mark_broken(self, generation: int, err: Any) -> bool:
        """Mark the producer broken, if `generation` is still the current one (True when it is)."""
        with self._lock:
            if generation != self._generation:
                return False
            self._broken = self._broken or err
            return True

    def _on_error(self, err: Any, generation: int | None = None) -> None:
        # librdkafka's error callback (from poll): a fatal error means this producer can send no more
        if err.fatal():
            if self._mark_broken(self._generation if generation is None else generation, err):
                log.error("the producer failed for good (%s); the next send replaces it", _why(err))
            else:
                log.warning("a replaced producer failed for good (%s)", _why(err))
        else:  # an outage librdkafka rides out by itself (a broker down, a connection refused)
            log.warning("Kafka client error: %s", _why(err))

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._producer.poll(POLL_S)
                for old, until in list(self._retiring):  # a replaced producer's last reports
                    old.poll(0)
                    if len(old) == 0 or time.monotonic() > until:
                        self._retiring.remove((old, until))
            except Exception:  # the poll thread must outlive any one failure, or no send is ever confirmed
                log.exception("polling the producer failed")
                time.sleep(POLL_S)

    def _current(self) -> tuple[Producer, int]:
        """The producer to send with and its generation; a broken one is replaced first (KafkaUnavailable
        if no broker answers)."""
        with self._lock:
            if self._broken is not None:
                old = self._producer
                # the new generation counts before the producer exists: an error it reports while being made
                # (making it may poll it) is its own, not a replaced producer's
                broken, self._broken = self._broken, None
                self._generation += 1
                try:
                    self._producer = self._make(self._generation)
                except BaseException:
                    self._generation, self._broken = self._generation - 1, broken
                    raise
                self._retiring.append((old, time.monotonic() + self._timeout_s + GRACE_S))
                log.warning("the producer was replaced after a fatal error")
            return self._producer, self._generation

    def send(self, topic: str, messages: Sequence[Message]) -> list[int]:
        """Send and wait for these messages' acknowledgements only; return the indexes not acknowledged
        (an outage, a deadline passed, a broken producer: sending them again may succeed). Messages refused
        for good raise MessageRefused naming them (and the failed ones), after the others were sent."""
        producer, generation = self._current()
        pending = Pending(len(messages))
        self._produce_all(producer, generation, topic, messages, pending)
        pending.wait(self._timeout_s + GRACE_S)
        out = pending.outcome()
        if out.fatal is not None:
            self._mark_broken(generation, out.fatal)
        if out.refused:
            raise MessageRefused(f"{len(out.refused)} message(s) to {topic} refused", out.refused, out.failed)
        return out.failed

    def _produce_all(self, producer: Producer, generation: int, topic: str, messages: Sequence[Message],
                     pending: Pending) -> None:
        deadline = time.monotonic() + self._timeout_s
        produce = producer.produce
        for i, (k, v, h) in enumerate(messages):
            while True:
                try:
                    produce(topic, value=v, key=k, headers=list(h) if h else None,
                            on_delivery=functools.partial(pending.report, i))
                    break
                except BufferError:  # the local queue is full: the poll thread drains it
                    if time.monotonic() > deadline:
                        return self._give_up(pending, i, len(messages))
                    time.sleep(0.005)
                except KafkaException as exc:
                    err = _error(exc)
                    if err is None or err.fatal() or err.code() in (_Err._STATE, _Err._FATAL):
                        self._mark_broken(generation, err or exc)
                        return self._give_up(pending, i, len(messages))
                    if _retriable(err):
                        return self._give_up(pending, i, len(messages))
                    pending.not_queued(i, _why(err))
                    break
        return None

    @staticmethod
    def _give_up(pending: Pending, start: int, count: int) -> None:
        # the rest are not queued: they fail (to be sent again); the queued ones are still waited for
        for j in range(start, count):
            pending.not_queued(j)

    def check_reachable(self, timeout_s: float) -> None:
        """KafkaUnavailable unless a broker answers (a broken producer is replaced first)."""
        check_reachable(self._current()[0], timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (up to `timeout_s`), then stop the poll thread."""
        self._producer.flush(timeout_s)
        self._stop.set()
        self._thread.join(timeout_s)
