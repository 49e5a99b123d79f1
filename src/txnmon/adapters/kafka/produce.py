"""Producing: queue a message without waiting (a load generator), send a batch and wait for every
acknowledgement (what failed and may be retried, what was refused for good), and queue a message
inside an open transaction. Client errors come out as KafkaUnavailable or MessageRefused.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from confluent_kafka import KafkaException, Producer

from txnmon.adapters.kafka.client_errors import _Err, _error, _retriable, _why
from txnmon.core.records import Message
from txnmon.errors import KafkaUnavailable, MessageRefused


def produce_nowait(producer: Producer, topic: str, key: bytes | None, value: bytes) -> None:
    """Queue one message without waiting for it (a load generator's send; `producer.flush()` waits)."""
    while True:
        try:
            producer.produce(topic, value=value, key=key)
            producer.poll(0)
            return
        except BufferError:
            producer.poll(0.05)  # the local queue is full: let deliveries drain it


def send_all(producer: Producer, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
    """Send (key, value) pairs; return the count once all are acknowledged, KafkaUnavailable if not."""
    batch: list[Message] = [(key, value, None) for key, value in messages]
    failed = send_confirmed(producer, topic, batch)
    if failed:
        raise KafkaUnavailable(f"{len(failed)} of {len(batch)} messages to {topic} were not acknowledged")
    return len(batch)


def _on_delivery(reports: dict[int, _Err | None], index: int, err: _Err | None, _msg: Any) -> None:
    reports[index] = err


def send_confirmed(producer: Producer, topic: str, messages: Sequence[Message]) -> list[int]:
    """Send and wait for every acknowledgement; return the indexes of messages that failed and may
    succeed on a retry (an outage). Messages the broker or client refuse for good (too large,
    invalid) raise MessageRefused naming them, after the others were sent: retrying cannot help.

    A fatal producer error (the idempotent or transactional producer cannot go on) is raised as a
    KafkaError once the others were flushed: the producer must be recreated."""
    reports: dict[int, _Err | None] = {}
    refused: dict[int, str] = {}
    produce = producer.produce
    for i, (k, v, h) in enumerate(messages):
        callback = functools.partial(_on_delivery, reports, i)
        headers = list(h) if h else None
        while True:
            try:
                produce(topic, value=v, key=k, headers=headers, on_delivery=callback)
                break
            except BufferError:
                producer.poll(0.05)  # the local queue is full: serve delivery reports until there is room
            except KafkaException as exc:
                err = _error(exc)
                if _retriable(err):
                    raise KafkaUnavailable(f"send to {topic} failed: {exc}") from exc
                if err is None or err.fatal() or err.code() == _Err._STATE:
                    raise
                refused[i] = _why(err)
                break
    producer.flush()
    failed = []
    fatal: _Err | None = None
    for i in range(len(messages)):
        if i in refused:
            continue
        if i not in reports:
            failed.append(i)  # no delivery report: not acknowledged
            continue
        err = reports[i]
        if err is None:
            continue
        if err.fatal():
            fatal = fatal or err
            failed.append(i)
        elif _retriable(err):
            failed.append(i)
        else:
            refused[i] = _why(err)
    if fatal is not None:
        raise KafkaException(fatal)
    if refused:
        raise MessageRefused(f"{len(refused)} message(s) to {topic} refused", refused, failed)
    return failed


def produce_to(producer: Producer, topic: str, message: Message, partition: int | None = None,
               timestamp: int = 0) -> None:
    """Queue one message inside the open transaction (`partition` None: by key; `timestamp` 0: now).

    Raises MessageRefused (index 0) when the client refuses it for good (too large).
    """
    key, value, headers = message
    kwargs: dict[str, Any] = {"key": key, "value": value}
    if headers:
        kwargs["headers"] = list(headers)
    if partition is not None:
        kwargs["partition"] = partition
    if timestamp > 0:
        kwargs["timestamp"] = timestamp
    for _ in range(1_000):
        try:
            producer.produce(topic, **kwargs)
            return
        except BufferError:
            producer.poll(0.05)  # the local queue is full: let deliveries drain it
        except KafkaException as exc:
            err = _error(exc)
            if _retriable(err):
                raise KafkaUnavailable(f"produce to {topic} failed: {exc}") from exc
            raise MessageRefused(f"message to {topic} refused: {exc}", {0: _why(err) if err else str(exc)}) from exc
    raise KafkaUnavailable(f"the producer's queue for {topic} stayed full")
