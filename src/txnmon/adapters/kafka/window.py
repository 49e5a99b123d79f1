"""The group-less window reader: the messages of a topic with timestamps in a time range, up to the
offsets captured when the window was opened. No consumer group, so nothing is committed and no
live group's offsets can move (a window replay reads beside the running processor).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from txnmon.adapters.kafka.client_errors import retrying_read
from txnmon.adapters.kafka.clients import _partitions, make_consumer
from txnmon.adapters.kafka.consume import _consumed, _watermarks
from txnmon.core.records import SourceRecord
from txnmon.errors import KafkaUnavailable, TopicMissing
from txnmon.settings import Settings


@dataclass(frozen=True)
class Window:
    """A consumer positioned at the first message at or after `start`, and where to stop."""

    consumer: Consumer
    stop_offsets: dict[int, int]  # partition -> first offset NOT in the window
    # partition -> the next offset this window will read (start offsets, then advanced by poll_window)
    positions: dict[int, int] = field(default_factory=dict)


def open_window(settings: Settings, topic: str, start_ms: int, end_ms: int) -> Window:
    """A group-less consumer over the messages of `topic` with timestamps in [start_ms, end_ms).

    No consumer group: nothing is committed, so no live group's offsets can move. The stop offsets
    are captured now: messages written later are not in the window.
    """
    # partition EOF events tell poll_window a partition is read to its end even when its last
    # offsets are not records (transaction markers, aborted records)
    consumer = make_consumer(settings, group_id=None, **{"enable.partition.eof": True})
    try:
        parts = _partitions(consumer, topic, 10.0)
        if not parts:
            raise TopicMissing(f"topic {topic!r} does not exist")
        tps = [TopicPartition(topic, p) for p in parts]
        # a topic just created can answer NOT_LEADER_FOR_PARTITION for a moment: waited out briefly
        ends = retrying_read(lambda: {tp.partition: _watermarks(consumer, tp, cached=False)[1] for tp in tps},
                             f"end offsets of {topic}")
        if any(end < 0 for end in ends.values()):
            raise KafkaUnavailable(f"could not read the end offsets of {topic}")

        def at(ms: int) -> list[TopicPartition]:
            return retrying_read(lambda: consumer.offsets_for_times([TopicPartition(topic, p, ms) for p in parts],
                                                                    timeout=10.0), f"offsets of {topic} at {ms}")

        starts, stops = at(start_ms), at(end_ms)
        # offsets_for_times answers -1 (the end) for a partition with no message at or after the time
        start_offsets = {tp.partition: tp.offset if tp.offset >= 0 else ends[tp.partition] for tp in starts}
        stop_offsets = {tp.partition: tp.offset if tp.offset >= 0 else ends[tp.partition] for tp in stops}
        consumer.assign([TopicPartition(topic, p, start_offsets[p]) for p in parts])
    except BaseException:
        consumer.close()
        raise
    return Window(consumer, stop_offsets, dict(start_offsets))


def poll_window(window: Window, timeout_ms: int, max_records: int) -> list[SourceRecord]:
    """The next records inside the window ([] when every partition reached its stop offset)."""
    if window_done(window):
        return []
    positions = window.positions

    def at_end(_topic: str, partition: int, offset: int) -> None:
        if offset > positions.get(partition, -1):
            positions[partition] = offset

    records = _consumed(window.consumer.consume(num_messages=max_records, timeout=timeout_ms / 1000), at_end)
    for r in records:
        if r.offset >= positions.get(r.partition, -1):
            positions[r.partition] = r.offset + 1
    return [r for r in records if r.offset < window.stop_offsets[r.partition]]


def window_done(window: Window) -> bool:
    return all(window.positions.get(p, -1) >= stop for p, stop in window.stop_offsets.items())
