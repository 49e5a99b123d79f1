"""What a processor runs with: the production wiring (a Kafka group member, a transactional producer,
the MongoDB sinks in their live order, the changelog), built once at start-up. Tests pass their
own wiring of list doubles (tests/fixtures/doubles.py)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from txnmon.adapters import kafka
from txnmon.adapters.mongo import ModelVersionsRepository, MongoStore, WatermarksRepository
from txnmon.jobs.lists import ListsFeed
from txnmon.pipeline import orders
from txnmon.pipeline.ports import Publisher, Sink, Source, StateStore
from txnmon.pipeline.publisher import KafkaStateStore, TransactionalPublisher
from txnmon.pipeline.retry import with_retry
from txnmon.pipeline.write_ahead import WriteAhead
from txnmon.services.model_watcher import ModelWatcher

if TYPE_CHECKING:
    from txnmon.services.processor import Processor


@dataclass
class Wired:
    """What a processor runs with, built once at start-up by its wiring."""

    source: Source
    sinks: Sequence[Sink]  # MongoDB, in order, for judged batches
    route_sinks: Sequence[Sink]  # MongoDB, for the raw messages rejected while re-keying
    publisher: Publisher
    state: StateStore
    close: Callable[[], None] = lambda: None
    load_watermarks: Callable[[list[int]], Mapping[int, Any]] = lambda partitions: {}  # see Watermarks.restore
    write_ahead: WriteAhead | None = None  # the transactions sink's inserts made while judging (WRITE_AHEAD_RECORDS)


Wiring = Callable[["Processor"], Wired]


def _load_model(settings: Any, version: str) -> Any:
    from txnmon.jobs import models  # its training side reads CSVs (pandas): imported only with a promoted model

    return models.load(settings, version)


def kafka_and_mongo(processor: Processor) -> Wired:
    """The production wiring: a group member on TOPIC_RAW and TOPIC_BY_USER, a transactional
    producer, MongoDB sinks, the changelog. Start-up retries until the services answer (or a stop
    is requested: StopRequested)."""
    s = processor.settings
    retry = {"should_stop": processor.stop_event.is_set, "on_retry": processor._count_retry}
    store = MongoStore(s)
    with_retry(store.ensure_indexes, sink="mongodb", **retry)
    processor.lists = ListsFeed(store, processor.detector, Path(s.rules_file), s.lists_refresh_seconds)
    # the promotion pointer is read as often as the lists: a promote reaches the stream within seconds
    processor.model = ModelWatcher(ModelVersionsRepository(store).promotion,
                                   lambda version: _load_model(s, version), s.lists_refresh_seconds)
    # a new id per process: a restarted member must not be fenced by (or fence) another live one;
    # the group generation fences a zombie of this one (exactly-once v2)
    txn_id = f"txnmon-{processor.group_id}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    publisher: TransactionalPublisher | None = None
    member = None
    try:
        member = with_retry(
            lambda: kafka.GroupMember(s, [s.topic_raw, s.topic_by_user], processor.group_id, processor.on_rebalance,
                                      **{"max.poll.interval.ms": 600_000}),
            sink="kafka", **retry)
        publisher = TransactionalPublisher(
            lambda: with_retry(lambda: kafka.make_transactional_producer(s, txn_id), sink="kafka", **retry),
            member, s)
    except BaseException:
        if member is not None:
            member.close()
        raise
    ahead = WriteAhead(store, s.write_ahead_records) if s.write_ahead_records else None

    def close() -> None:
        try:
            publisher.close()
        finally:
            if ahead is not None:
                ahead.close()

    return Wired(source=member,
                 sinks=orders.build_sinks(orders.LIVE, store, routes=processor.routes, watermark_topic=s.topic_by_user,
                                          ahead=ahead),
                 route_sinks=orders.build_sinks(orders.ROUTED, store),
                 publisher=publisher, state=KafkaStateStore(s), close=close,
                 load_watermarks=lambda partitions: WatermarksRepository(store).load(s.topic_by_user, partitions),
                 write_ahead=ahead)
