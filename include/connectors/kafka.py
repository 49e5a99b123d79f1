"""Every Kafka call txnmon makes, behind a handful of named operations.

Nothing else in the project imports the Kafka client library: the processor, the replay, the
DAGs and the tests build producers, consumers and the admin client here, from `Settings`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kafka_errors
from kafka.structs import OffsetAndMetadata

from include.config import Settings
from include.core.records import Message, SourceRecord
from include.errors import CommitRefused, KafkaUnavailable, MessageRefused, TopicMissing

log = logging.getLogger(__name__)

KafkaError = kafka_errors.KafkaError
TopicAlreadyExists = kafka_errors.TopicAlreadyExistsError
CommitFailed = kafka_errors.CommitFailedError
RetriableKafkaError = kafka_errors.RetriableError


def _unavailable(settings: Settings) -> KafkaUnavailable:
    return KafkaUnavailable(f"no Kafka broker answers at {settings.kafka_bootstrap_servers}")


def client_config(settings: Settings) -> dict[str, Any]:
    """Connection and security options shared by producers, consumers and the admin client."""
    cfg: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "security_protocol": settings.kafka_security_protocol,
        "bootstrap_timeout_ms": settings.kafka_bootstrap_timeout_ms,
    }
    if settings.kafka_sasl_mechanism:
        cfg["sasl_mechanism"] = settings.kafka_sasl_mechanism
        cfg["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            cfg["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        value = getattr(settings, f"kafka_{key}")
        if value:
            cfg[key] = value
    return cfg


def make_admin(settings: Settings) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(client_id="txnmon-admin", request_timeout_ms=15000, **client_config(settings))
    except kafka_errors.KafkaTimeoutError as exc:
        raise _unavailable(settings) from exc


def make_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A producer tuned for throughput with no loss: acks=all, idempotent, batched, compressed."""
    cfg: dict[str, Any] = {
        "client_id": "txnmon-producer",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "compression_type": "lz4",
        "max_in_flight_requests_per_connection": 5,
        "retries": 2_147_483_647,
        "delivery_timeout_ms": 120_000,
        **client_config(settings),
    }
    cfg.update(overrides)
    try:
        return KafkaProducer(**cfg)
    except kafka_errors.KafkaTimeoutError as exc:
        raise _unavailable(settings) from exc


def make_consumer(settings: Settings, *topics: str, group_id: str | None, **overrides: Any) -> KafkaConsumer:
    """A consumer that never auto-commits: the caller commits after its writes are acknowledged."""
    cfg: dict[str, Any] = {
        "client_id": "txnmon-consumer",
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": settings.batch_max_records,
        "fetch_max_bytes": 50 * 1024 * 1024,
        "max_partition_fetch_bytes": 8 * 1024 * 1024,
        # a member that joined before its topic's metadata was known is assigned nothing until
        # the next metadata refresh: keep that wait short instead of the default five minutes
        "metadata_max_age_ms": 5000,
        # a loaded two-core machine can starve the heartbeat thread for seconds: a longer session
        # avoids rebalances (and redelivery) that no failure caused
        "session_timeout_ms": 30_000,
        "heartbeat_interval_ms": 3_000,
        **client_config(settings),
    }
    cfg.update(overrides)
    try:
        return KafkaConsumer(*topics, **cfg)
    except kafka_errors.KafkaTimeoutError as exc:
        raise _unavailable(settings) from exc


def ensure_topics(
    settings: Settings,
    topics: Iterable[str] | None = None,
    partitions: int | None = None,
) -> list[str]:
    """Create the pipeline's topics if missing; return the ones this call created.

    Partition counts are chosen here rather than by broker auto-create, so a typo in a topic
    name fails loudly instead of creating a one-partition topic.
    """
    wanted = list(topics or (settings.topic_raw, settings.topic_enriched, settings.topic_dlq))
    n = partitions or settings.topic_partitions
    admin = make_admin(settings)
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            spec = {
                t: {"num_partitions": n, "replication_factor": settings.topic_replication_factor}
                for t in missing
            }
            try:
                admin.create_topics(spec, wait_for_metadata=True)
            except TopicAlreadyExists:
                # another process created it between list and create: that is the outcome we want
                pass
        return missing
    finally:
        admin.close()


def delete_topics(settings: Settings, topics: Iterable[str]) -> None:
    admin = make_admin(settings)
    try:
        admin.delete_topics(list(topics))
    finally:
        admin.close()


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int


def describe_topics(settings: Settings, topics: Iterable[str]) -> list[TopicInfo]:
    admin = make_admin(settings)
    try:
        return [
            TopicInfo(t["name"], len(t["partitions"]))
            for t in admin.describe_topics(list(topics))
            if t.get("error_code", 0) == 0
        ]
    finally:
        admin.close()


def require_topics(settings: Settings, *topics: str) -> None:
    """Fail fast (TopicMissing) instead of letting a producer block on a topic that is not there."""
    found = {info.name for info in describe_topics(settings, topics)}
    missing = [t for t in topics if t not in found]
    if missing:
        raise TopicMissing(f"topic(s) {', '.join(missing)} do not exist (run `txnmon init` or `make up`)")


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """Latest offset (next to be written) of every partition of `topic`."""
    consumer = make_consumer(settings, group_id=None)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        return {tp.partition: off for tp, off in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def committed_offsets(settings: Settings, group_id: str, topic: str) -> dict[int, int]:
    admin = make_admin(settings)
    try:
        for attempt in range(20):
            try:
                groups = admin.list_group_offsets({group_id: None})
                break
            except kafka_errors.CoordinatorNotAvailableError:
                # right after the broker's first start the offsets topic is still being created
                if attempt == 19:
                    raise
                time.sleep(0.5)
    finally:
        admin.close()
    return {
        tp.partition: meta.offset
        for tp, meta in groups.get(group_id, {}).items()
        if tp.topic == topic and meta.offset >= 0
    }


def consumer_lag(settings: Settings, group_id: str, topic: str) -> dict[int, int]:
    """Messages not yet committed by the group, per partition."""
    ends = end_offsets(settings, topic)
    done = committed_offsets(settings, group_id, topic)
    return {p: end - done.get(p, 0) for p, end in ends.items()}


def send_all(producer: KafkaProducer, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
    """Send (key, value) pairs; return the count once all are acknowledged, KafkaUnavailable if not."""
    batch: list[Message] = [(key, value, None) for key, value in messages]
    failed = send_confirmed(producer, topic, batch)
    if failed:
        raise KafkaUnavailable(f"{len(failed)} of {len(batch)} messages to {topic} were not acknowledged")
    return len(batch)


# --- consuming, for the processor -----------------------------------------------------------


class _Listener(ConsumerRebalanceListener):
    def __init__(self, on_change: Callable[[str, list[int]], None]) -> None:
        self._on_change = on_change

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._on_change("revoked", sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._on_change("assigned", sorted(tp.partition for tp in assigned))


def subscribe(
    consumer: KafkaConsumer, topic: str, on_change: Callable[[str, list[int]], None], wait_s: float = 15.0
) -> None:
    """Join the group on `topic`; `on_change("revoked"|"assigned", partitions)` runs inside poll.

    The topic's partitions are looked up first: a group leader that joins before its client
    has the topic's metadata assigns nothing, and recovers only on a later metadata refresh.
    """
    deadline = time.monotonic() + wait_s
    while not consumer.partitions_for_topic(topic):
        if time.monotonic() > deadline:
            raise TopicMissing(f"topic {topic!r} does not exist (run `txnmon init`)")
        time.sleep(0.2)
    consumer.subscribe([topic], listener=_Listener(on_change))


def poll_records(consumer: KafkaConsumer, timeout_ms: int, max_records: int) -> list[SourceRecord]:
    batch = consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
    return [
        SourceRecord(r.topic, r.partition, r.offset, r.key, r.value if r.value is not None else b"", r.timestamp,
                     tuple(r.headers or ()))
        for records in batch.values()
        for r in records
    ]


def commit_offsets(consumer: KafkaConsumer, topic: str, next_offsets: Mapping[int, int]) -> None:
    """Commit `next_offsets` (partition -> first offset NOT yet processed) synchronously."""
    consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in next_offsets.items()})


def lag_of(consumer: KafkaConsumer) -> int | None:
    """Messages behind the latest known high-water mark, over the assigned partitions."""
    total = 0
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            return None
        total += max(0, high - consumer.position(tp))
    return total


class KafkaSource:
    """The processor's input: one member of a consumer group on one topic, yielding plain records.

    Client errors stay here: a failed poll or a retriable commit error is KafkaUnavailable (the
    caller retries), a commit refused after a rebalance is CommitRefused (the batch is redelivered
    to the partitions' new owner).
    """

    def __init__(self, settings: Settings, topic: str, group_id: str,
                 on_change: Callable[[str, list[int]], None], **overrides: Any) -> None:
        self.topic = topic
        self.consumer = make_consumer(settings, group_id=group_id, **overrides)
        try:
            subscribe(self.consumer, topic, on_change)
        except BaseException:
            self.consumer.close()
            raise

    def poll(self, timeout_ms: int, max_records: int) -> list[SourceRecord]:
        try:
            return poll_records(self.consumer, timeout_ms, max_records)
        except KafkaError as exc:
            raise KafkaUnavailable(f"poll failed: {exc}", retry_after=1.0) from exc

    def commit(self, next_offsets: Mapping[int, int]) -> None:
        try:
            commit_offsets(self.consumer, self.topic, next_offsets)
        except CommitFailed as exc:
            raise CommitRefused(str(exc).split("\n")[0]) from exc
        except RetriableKafkaError as exc:
            raise KafkaUnavailable(f"commit failed: {exc}") from exc

    def lag(self) -> int | None:
        try:
            return lag_of(self.consumer)
        except KafkaError:
            return None  # a metric is not worth failing a committed batch for

    def close(self) -> None:
        self.consumer.close()


@dataclass(frozen=True)
class Window:
    """A consumer positioned at the first message at or after `start`, and where to stop."""

    consumer: KafkaConsumer
    stop_offsets: dict[int, int]  # partition -> first offset NOT in the window


def open_window(settings: Settings, topic: str, start_ms: int, end_ms: int) -> Window:
    """A group-less consumer over the messages of `topic` with timestamps in [start_ms, end_ms).

    No consumer group: nothing is committed, so no live group's offsets can move.
    """
    consumer = make_consumer(settings, group_id=None)
    parts = sorted(consumer.partitions_for_topic(topic) or ())
    if not parts:
        consumer.close()
        raise TopicMissing(f"topic {topic!r} does not exist")
    tps = [TopicPartition(topic, p) for p in parts]
    consumer.assign(tps)
    ends = consumer.end_offsets(tps)
    starts = consumer.offsets_for_times({tp: start_ms for tp in tps})
    stops = consumer.offsets_for_times({tp: end_ms for tp in tps})
    stop_offsets = {}
    for tp in tps:
        first = starts.get(tp)
        consumer.seek(tp, first.offset if first is not None else ends[tp])
        last = stops.get(tp)
        stop_offsets[tp.partition] = last.offset if last is not None else ends[tp]
    return Window(consumer, stop_offsets)


def poll_window(window: Window, timeout_ms: int, max_records: int) -> list[SourceRecord]:
    """The next records inside the window ([] when every partition reached its stop offset)."""
    if window_done(window):
        return []
    records = poll_records(window.consumer, timeout_ms, max_records)
    return [r for r in records if r.offset < window.stop_offsets[r.partition]]


def window_done(window: Window) -> bool:
    return all(window.consumer.position(tp) >= window.stop_offsets[tp.partition]
               for tp in window.consumer.assignment())


# --- producing with delivery confirmation ----------------------------------------------------

def send_confirmed(producer: KafkaProducer, topic: str, messages: Sequence[Message]) -> list[int]:
    """Send and wait for every acknowledgement; return the indexes of messages that failed and may
    succeed on a retry (an outage). Messages the broker or client refuse for good (too large,
    invalid) raise MessageRefused naming them, after the others were sent: retrying cannot help."""
    futures: list[Any] = []
    refused: dict[int, str] = {}
    for i, (k, v, h) in enumerate(messages):
        try:
            futures.append(producer.send(topic, key=k, value=v, headers=list(h) if h else None))
        except KafkaError as exc:
            if getattr(exc, "retriable", False):
                raise KafkaUnavailable(f"send to {topic} failed: {exc}") from exc
            futures.append(None)
            refused[i] = f"{type(exc).__name__}: {exc}"[:300]
    producer.flush()
    failed = []
    for i, fut in enumerate(futures):
        if fut is None:
            continue
        if not fut.is_done:
            failed.append(i)
        elif fut.failed():
            if getattr(fut.exception, "retriable", True) or isinstance(fut.exception, kafka_errors.KafkaTimeoutError):
                failed.append(i)
            else:
                refused[i] = f"{type(fut.exception).__name__}: {fut.exception}"[:300]
    if refused:
        raise MessageRefused(f"{len(refused)} message(s) to {topic} refused", refused, failed)
    return failed
