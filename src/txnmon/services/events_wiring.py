"""What `txnmon events` runs with in production: a consumer-group member (EVENTS_GROUP) on the three event
topics, MongoDB (events, rejected, watermarks), an idempotent producer for the DLQ, built once at start-up.
The unit tests pass their own ports (tests/unit/services/test_events_loop.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore, WatermarksRepository
from txnmon.core.event_batch import EventBatch
from txnmon.core.records import Message, SourceRecord
from txnmon.jobs.rollups import processor_watermark
from txnmon.pipeline import event_sinks
from txnmon.pipeline.event_sinks import Refusals
from txnmon.pipeline.retry import with_retry
from txnmon.pipeline.sinks import RejectedSink
from txnmon.settings import Settings


class StoredEventTime:
    """Where closed event time is read from (`event_sinks.ClosedTimeSource`): MongoDB and the broker."""

    def __init__(self, settings: Settings, store: MongoStore) -> None:
        self.settings = settings
        self.store = store
        self.marks = WatermarksRepository(store)
        self._admin: Any = None

    def load_marks(self, topic: str) -> dict[int, dict[str, Any]]:
        return self.marks.load_topic(topic)

    def end_offsets(self, topic: str) -> dict[int, int]:
        # one admin client for the process: the service asks after every batch
        if self._admin is None:
            self._admin = kafka.make_admin(self.settings)
        return kafka.end_offsets(self.settings, topic, admin=self._admin)

    def processor_mark(self) -> dt.datetime | None:
        return processor_watermark(self.store)


def closed_event_time_now(settings: Settings, store: MongoStore) -> dt.datetime | None:
    """The closed event time `txnmon events` computes now (for `txnmon stock|sentiment run`)."""
    return event_sinks.closed_event_time(StoredEventTime(settings, store), settings, now=dt.datetime.now(dt.UTC))


class MongoKafkaPorts(StoredEventTime):
    """The production `EventsPorts` (txnmon.pipeline.event_sinks)."""

    def __init__(self, settings: Settings, member: Any, store: MongoStore) -> None:
        super().__init__(settings, store)
        self.member = member
        self.rejected = RejectedSink(store)
        self._producer: Any = None

    def poll(self, timeout_ms: int, max_records: int) -> list[SourceRecord]:
        return self.member.poll(timeout_ms, max_records)

    def lag(self) -> int | None:
        return self.member.lag()

    def store_events(self, batch: EventBatch) -> Refusals:
        return event_sinks.store_events(self.store, batch)

    def store_rejected(self, batch: EventBatch) -> None:
        self.rejected.write(batch)  # type: ignore[arg-type]  # it reads only the batch's `rejected`

    def send_dlq(self, messages: Sequence[Message]) -> None:
        if messages and self._producer is None:
            self._producer = kafka.make_producer(self.settings)
        event_sinks.send_dlq(self._producer, self.settings.topic_dlq, messages)

    def save_marks(self, topic: str, marks: Mapping[int, Mapping[str, Any]]) -> None:
        self.marks.save(topic, marks)

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.member.commit(offsets)

    def close(self) -> None:
        try:
            self.member.close()
        finally:
            if self._producer is not None:
                self._producer.flush(10)


def kafka_and_mongo(settings: Settings, group_id: str,
                    on_change: Callable[[str, list[tuple[str, int]]], None],
                    should_stop: Callable[[], bool], on_retry: Callable[[str], None]) -> tuple[MongoKafkaPorts,
                                                                                                 MongoStore]:
    """The production ports, and the store the analyses get. Start-up retries until the services answer
    (or a stop is requested: StopRequested)."""
    retry = {"should_stop": should_stop, "on_retry": on_retry}
    store = MongoStore(settings)
    with_retry(store.ensure_indexes, sink="mongodb", **retry)
    member = with_retry(lambda: kafka.GroupMember(settings, list(settings.event_topics), group_id, on_change,
                                                  **{"max.poll.interval.ms": 600_000}),
                        sink="kafka", **retry)
    return MongoKafkaPorts(settings, member, store), store
