"""Consuming: a consumer's messages as plain `SourceRecord`s (client events logged, skipped or
raised), a bounded poll, an assigned consumer's lag, and the group-less reads the jobs use (an
offset range of one partition, or a whole partition to restore state). No client object leaves
this module: callers get records.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaException,
    TopicPartition,
)

from txnmon.adapters.kafka.client_errors import _POLL_RAISES, _Err, _why, retrying_read
from txnmon.adapters.kafka.clients import ADMIN_TIMEOUT_S, make_consumer
from txnmon.core.records import SourceRecord
from txnmon.errors import KafkaUnavailable
from txnmon.settings import Settings

log = logging.getLogger("txnmon.adapters.kafka")


def _consumed(msgs: list[Any], on_eof: Callable[[str, int, int], None] | None = None) -> list[SourceRecord]:
    """Plain records from consume()'s messages; events are logged, skipped, or raised."""
    out: list[SourceRecord] = []
    append = out.append
    record = SourceRecord
    for m in msgs:
        err = m.error()
        if err is None:
            value = m.value()
            kind, ts = m.timestamp()
            headers = m.headers()
            append(record(m.topic(), m.partition(), m.offset(), m.key(), b"" if value is None else value,
                          -1 if kind == TIMESTAMP_NOT_AVAILABLE else ts, tuple(headers) if headers else ()))
            continue
        code = err.code()
        if code == _Err._PARTITION_EOF:
            if on_eof is not None:
                on_eof(m.topic(), m.partition(), m.offset())
        elif err.fatal():
            raise KafkaUnavailable(f"consumer failed for good: {_why(err)} (recreate it)", retry_after=1.0)
        elif code in _POLL_RAISES:
            raise KafkaException(err)
        else:
            # informational: the client recovers by itself (broker down, topic not yet known, ...)
            log.warning("consumer: %s", _why(err))
    return out


def poll_records(consumer: Consumer, timeout_ms: int, max_records: int) -> list[SourceRecord]:
    """Up to `max_records` records, waiting at most `timeout_ms` for the first.

    librdkafka's consume(n, timeout) waits until it has n messages or the timeout passed, so a
    quiet topic would hold every batch for the whole timeout (twice per transaction: the raw and
    the by-user hop). Instead: what the client has already fetched, else wait for one message and
    take it with whatever arrived with it.
    """
    msgs = consumer.consume(num_messages=max_records, timeout=0)
    if not msgs:
        msgs = consumer.consume(num_messages=1, timeout=timeout_ms / 1000)
        if msgs and max_records > 1:
            msgs += consumer.consume(num_messages=max_records - 1, timeout=0)
    return _consumed(msgs)


def _watermarks(consumer: Consumer, tp: TopicPartition, cached: bool) -> tuple[int, int]:
    marks = consumer.get_watermark_offsets(tp, timeout=5.0, cached=cached)
    return marks if marks is not None else (OFFSET_INVALID, OFFSET_INVALID)


def lag_of(consumer: Consumer) -> int | None:
    """Messages behind the latest known high-water mark, over the assigned partitions."""
    assigned = consumer.assignment()
    if not assigned:
        return 0
    positions = {tp.partition: tp for tp in consumer.position(assigned)}
    # nothing consumed from a partition yet: it starts at the group's committed offset, else the
    # earliest one (what kafka-python's position() looked up)
    unknown = [TopicPartition(tp.topic, tp.partition) for tp in positions.values() if tp.offset < 0]
    committed = {tp.partition: tp.offset for tp in consumer.committed(unknown, timeout=5.0)} if unknown else {}
    total = 0
    for p, tp in positions.items():
        high = _watermarks(consumer, tp, cached=True)[1]
        if high < 0:
            return None  # no fetch response yet
        pos = tp.offset if tp.offset >= 0 else committed.get(p, OFFSET_INVALID)
        if pos < 0:
            pos = _watermarks(consumer, tp, cached=False)[0]
            if pos < 0:
                return None
        total += max(0, high - pos)
    return total


def read_range(settings: Settings, topic: str, partition: int, start: int, end: int,
               timeout_s: float = 30.0) -> list[SourceRecord]:
    """The records of `topic[partition]` with offsets in [start, end), group-less."""
    if end <= start:
        return []
    consumer = make_consumer(settings, group_id=None, **{"enable.partition.eof": True})
    out: list[SourceRecord] = []
    reached_end: list[bool] = []
    deadline = time.monotonic() + timeout_s
    try:
        consumer.assign([TopicPartition(topic, partition, start)])
        while not reached_end and (not out or out[-1].offset < end - 1):
            if time.monotonic() > deadline:
                raise KafkaUnavailable(f"reading {topic}[{partition}] {start}..{end}: no end after {timeout_s:.0f}s")
            batch = _consumed(consumer.consume(1000, 1.0), on_eof=lambda _t, _p, _o: reached_end.append(True))
            out.extend(r for r in batch if r.offset < end)
    finally:
        consumer.close()
    return out


def read_partition(settings: Settings, topic: str, partition: int, batch: int = 10_000,
                   stall_s: float = 30.0) -> Iterator[SourceRecord]:
    """Every committed record of one partition, from the beginning to its end (a state restore: a
    compacted changelog holds the latest value per key). The end is the partition-EOF event, which
    also covers transaction markers at the tail, where no record reaches the high-water mark."""
    consumer = make_consumer(settings, group_id=None, **{"enable.partition.eof": True})
    reached_end: list[bool] = []
    try:
        try:
            low, high = retrying_read(
                lambda: consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=ADMIN_TIMEOUT_S),
                f"offsets of {topic}[{partition}]")
        except KafkaException as exc:
            raise KafkaUnavailable(f"restoring {topic}[{partition}]: {exc}") from exc
        if high <= low:
            return  # empty (or emptied by retention): nothing to wait for
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        progress_at = time.monotonic()
        while not reached_end:
            # a short wait: consume() returns when the batch is full or the wait ends, and the
            # end-of-partition event does not end it early
            records = _consumed(consumer.consume(batch, 0.1), on_eof=lambda _t, _p, _o: reached_end.append(True))
            if records:
                progress_at = time.monotonic()
                yield from records
            elif time.monotonic() - progress_at > stall_s:
                raise KafkaUnavailable(f"restoring {topic}[{partition}]: no progress for {stall_s:.0f}s")
    finally:
        consumer.close()
