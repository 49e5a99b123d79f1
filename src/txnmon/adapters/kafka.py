"""Every Kafka call txnmon makes, behind a handful of named operations: the confluent-kafka port.

A drop-in replacement for `txnmon.adapters.kafka` (same names, signatures and behaviour) on
librdkafka, plus what exactly-once processing needs: transactional producers, the consumer
group's metadata and `commit_member_transaction`. Nothing else in the project imports the Kafka client
library: producers, consumers and the admin client are built here, from `Settings`, and client
errors are translated into txnmon's own errors here.

Where the client differs from kafka-python, this module hides it:

- librdkafka connects in the background; every factory checks that a broker answers within
  KAFKA_BOOTSTRAP_TIMEOUT_MS (KafkaUnavailable otherwise), as kafka-python's constructors did.
- Overrides are librdkafka's option names (`**{"linger.ms": 0}`), passed to the client as given;
  it refuses a name it does not know (KafkaError).
- librdkafka's consumer needs a group.id: a group-less consumer (`group_id=None`) gets a random
  throwaway id that is never used to commit, and is *assigned* its topics' partitions.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka import KafkaError as _Err
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from txnmon.core.records import Message, SourceRecord
from txnmon.errors import CommitRefused, KafkaUnavailable, MessageRefused, ProducerLost, TopicMissing
from txnmon.settings import Settings

__all__ = [
    "KafkaError",
    "Message",
    "SourceRecord",
    "TopicInfo",
    "TransactionalProducer",
    "Window",
    "abort_transaction",
    "begin_transaction",
    "client_config",
    "close_producer",
    "committed_offsets",
    "consumer_lag",
    "delete_topics",
    "describe_topics",
    "end_offsets",
    "ensure_topics",
    "lag_of",
    "make_admin",
    "make_consumer",
    "make_producer",
    "make_transactional_producer",
    "open_window",
    "poll_records",
    "poll_window",
    "produce_nowait",
    "require_topics",
    "send_all",
    "send_confirmed",
    "window_done",
]

log = logging.getLogger(__name__)
# librdkafka's own log lines (connection failures, ...) go here; they are forwarded when the
# client is polled (consume, poll, flush), never printed to stderr.
_client_log = logging.getLogger(__name__ + ".librdkafka")

# `except kafka.KafkaError` keeps working: every client error is a KafkaException, whose
# `.args[0]` is a confluent_kafka.KafkaError with .code(), .retriable(), .fatal(), .txn_requires_abort().
KafkaError = KafkaException

ADMIN_TIMEOUT_S = 15.0
TXN_TIMEOUT_S = 10.0
# librdkafka can block in a transactional call far past the timeout it is given once the group
# coordinator went away and came back (confluentinc/librdkafka#5456 and #5511: coordinator requests'
# timeouts are never checked). Each such call runs on a helper thread; past TXN_TIMEOUT_S plus this
# grace the producer is given up (ProducerLost) and the caller replaces it.
TXN_GRACE_S = 5.0

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


# --- configuration ---------------------------------------------------------------------------

def client_config(settings: Settings) -> dict[str, Any]:
    """Connection and security options (librdkafka keys) shared by producers, consumers and the admin client."""
    cfg: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "security.protocol": settings.kafka_security_protocol.lower(),
        # kafka-python gave up bootstrapping after bootstrap_timeout_ms; librdkafka connects in the
        # background: a connection attempt is abandoned after this (librdkafka's floor is 1 s), and
        # the factories below wait at most kafka_bootstrap_timeout_ms for a broker to answer
        "socket.connection.setup.timeout.ms": max(1000, settings.kafka_bootstrap_timeout_ms),
        # topics are created by ensure_topics with the partitions we choose, never by a typo
        "allow.auto.create.topics": False,
        "logger": _client_log,
    }
    if settings.kafka_sasl_mechanism:
        cfg["sasl.mechanism"] = settings.kafka_sasl_mechanism
        if settings.kafka_sasl_username is not None:
            cfg["sasl.username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            cfg["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    for key, librdkafka_key in (("ssl_cafile", "ssl.ca.location"), ("ssl_certfile", "ssl.certificate.location"),
                                ("ssl_keyfile", "ssl.key.location")):
        value = getattr(settings, f"kafka_{key}")
        if value:
            cfg[librdkafka_key] = value
    return cfg


def _check_reachable(client: Any, settings: Settings) -> None:
    timeout = settings.kafka_bootstrap_timeout_ms / 1000
    try:
        if isinstance(client, Consumer):
            client.list_topics(timeout=timeout)  # a consumer's cluster_id() waits a second even when answered
        else:
            client.cluster_id(timeout=timeout)
    except KafkaException as exc:
        raise _unavailable(settings) from exc


# --- clients ---------------------------------------------------------------------------------

def make_admin(settings: Settings) -> AdminClient:
    admin = AdminClient({"client.id": "txnmon-admin", "socket.timeout.ms": 15_000, **client_config(settings)})
    _check_reachable(admin, settings)
    return admin


def _producer_config(settings: Settings, overrides: Mapping[str, Any]) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "client.id": "txnmon-producer",
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "batch.num.messages": 100_000,
        "compression.type": "lz4",
        "max.in.flight.requests.per.connection": 5,
        "retries": 2_147_483_647,
        "delivery.timeout.ms": 120_000,
        "message.max.bytes": 1_048_576,  # kafka-python's max_request_size default
        "queue.buffering.max.messages": 500_000,
        # the Java client's (and kafka-python's) partitioning: murmur2 of the key, so a user's messages
        # stay on the partition they were on before the port; a keyless message goes to a random
        # partition each time (librdkafka's default would hash with CRC32 and stick keyless ones to one)
        "partitioner": "murmur2_random",
        "sticky.partitioning.linger.ms": 0,
        **client_config(settings),
    }
    cfg.update(overrides)
    return cfg


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    """A producer tuned for throughput with no loss: acks=all, idempotent, batched, compressed."""
    producer = Producer(_producer_config(settings, overrides))
    _check_reachable(producer, settings)
    return producer


def make_consumer(settings: Settings, *topics: str, group_id: str | None, **overrides: Any) -> Consumer:
    """A consumer that never auto-commits: the caller commits after its writes are acknowledged.

    It reads only committed transactional data (isolation.level=read_committed). With topics, a
    group member subscribes to them; a group-less consumer (`group_id=None`) is assigned all their
    partitions, starting where auto.offset.reset says (the earliest offset).
    """
    cfg: dict[str, Any] = {
        "client.id": "txnmon-consumer",
        # librdkafka needs a group id even to assign partitions: a throwaway one, never committed to
        "group.id": group_id if group_id is not None else f"txnmon-nogroup-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "fetch.max.bytes": 50 * 1024 * 1024,
        "max.partition.fetch.bytes": 8 * 1024 * 1024,
        # how long the broker may hold a fetch with nothing new: every transaction crosses two
        # topics (raw, then by-user), so this wait is paid twice by a quiet stream (default 500 ms)
        "fetch.wait.max.ms": 50,
        # a member that joined before its topic's metadata was known is assigned nothing until
        # the next metadata refresh: keep that wait short instead of the default five minutes
        "topic.metadata.refresh.interval.ms": 5000,
        # a loaded two-core machine can starve the heartbeat thread for seconds: a longer session
        # avoids rebalances (and redelivery) that no failure caused
        "session.timeout.ms": 30_000,
        "heartbeat.interval.ms": 3_000,
        **client_config(settings),
    }
    cfg.update(overrides)
    consumer = Consumer(cfg)
    try:
        _check_reachable(consumer, settings)
        if topics and group_id is not None:
            consumer.subscribe(list(topics))
        elif topics:
            consumer.assign([TopicPartition(t, p) for t in topics for p in _partitions(consumer, t, 5.0)])
    except BaseException:
        consumer.close()
        raise
    return consumer


def _partitions(client: Any, topic: str, timeout_s: float) -> list[int]:
    """The topic's partitions ([] if it does not exist)."""
    meta = client.list_topics(topic=topic, timeout=timeout_s).topics.get(topic)
    if meta is None or meta.error is not None:
        return []
    return sorted(meta.partitions)


# --- topics ----------------------------------------------------------------------------------

def ensure_topics(
    settings: Settings,
    topics: Iterable[str] | None = None,
    partitions: int | None = None,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """Create the pipeline's topics if missing; return the ones this call created.

    Partition counts are chosen here rather than by broker auto-create, so a typo in a topic
    name fails loudly instead of creating a one-partition topic.
    """
    wanted = list(topics or settings.pipeline_topics)
    n = partitions or settings.topic_partitions
    # the state changelog keeps the latest value per user; an empty value (a tombstone) removes one
    configs = {settings.topic_state: {"cleanup.policy": "compact"}, **(configs or {})}
    admin = make_admin(settings)
    existing = set(admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics)
    missing = [t for t in wanted if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics([NewTopic(t, n, settings.topic_replication_factor, config=dict(configs.get(t, {})))
                                   for t in missing],
                                  operation_timeout=ADMIN_TIMEOUT_S, request_timeout=ADMIN_TIMEOUT_S)
    for fut in futures.values():
        try:
            fut.result()
        except KafkaException as exc:
            err = _error(exc)
            if err is None or err.code() != _Err.TOPIC_ALREADY_EXISTS:
                raise
            # another process created it between list and create: that is the outcome we want
    # like kafka-python's wait_for_metadata: return once every partition has a leader
    deadline = time.monotonic() + ADMIN_TIMEOUT_S
    pending = list(missing)
    while pending and time.monotonic() < deadline:
        meta = admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics
        pending = [t for t in pending
                   if t not in meta or meta[t].error is not None or len(meta[t].partitions) < n
                   or any(p.leader < 0 for p in meta[t].partitions.values())]
        if pending:
            time.sleep(0.1)
    return missing


def delete_topics(settings: Settings, topics: Iterable[str]) -> None:
    """Delete the topics; a KafkaError (e.g. UNKNOWN_TOPIC_OR_PART) if one could not be, after trying all."""
    names = list(topics)
    if not names:
        return
    admin = make_admin(settings)
    futures = admin.delete_topics(names, operation_timeout=ADMIN_TIMEOUT_S, request_timeout=ADMIN_TIMEOUT_S)
    first: KafkaException | None = None
    for fut in futures.values():
        try:
            fut.result()
        except KafkaException as exc:
            first = first or exc
    if first is not None:
        raise first


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: int


def describe_topics(settings: Settings, topics: Iterable[str]) -> list[TopicInfo]:
    """The topics that exist, in the order asked, with their partition counts."""
    names = list(dict.fromkeys(topics))
    if not names:
        return []
    admin = make_admin(settings)
    futures = admin.describe_topics(TopicCollection(names), request_timeout=ADMIN_TIMEOUT_S)
    infos = []
    for name in names:
        try:
            desc = futures[name].result()
        except KafkaException as exc:
            err = _error(exc)
            if err is not None and (err.code() >= 0 or err.code() == _Err._UNKNOWN_TOPIC):
                continue  # the broker's answer for this topic is an error: it does not exist (for us)
            raise
        infos.append(TopicInfo(desc.name, len(desc.partitions)))
    return infos


def require_topics(settings: Settings, *topics: str) -> None:
    """Fail fast (TopicMissing) instead of letting a producer block on a topic that is not there."""
    found = {info.name for info in describe_topics(settings, topics)}
    missing = [t for t in topics if t not in found]
    if missing:
        raise TopicMissing(f"topic(s) {', '.join(missing)} do not exist (run `txnmon init` or `make up`)")


def end_offsets(settings: Settings, topic: str, *, committed: bool = False) -> dict[int, int]:
    """Latest offset (next to be written: the high-water mark) of every partition of `topic`; with
    `committed`, the last stable offset (before the first record of a transaction still open)."""
    admin = make_admin(settings)
    parts = _partitions(admin, topic, ADMIN_TIMEOUT_S)
    if not parts:
        return {}
    isolation = IsolationLevel.READ_COMMITTED if committed else IsolationLevel.READ_UNCOMMITTED
    futures = admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in parts},
                                 isolation_level=isolation, request_timeout=ADMIN_TIMEOUT_S)
    return {tp.partition: fut.result().offset for tp, fut in sorted(futures.items(), key=lambda i: i[0].partition)}


def offsets_for_time(settings: Settings, topic: str, timestamp_ms: int) -> dict[int, int]:
    """Per partition, the first offset whose timestamp is at or after `timestamp_ms` (the end offset if none)."""
    admin = make_admin(settings)
    parts = _partitions(admin, topic, ADMIN_TIMEOUT_S)
    if not parts:
        return {}
    futures = admin.list_offsets({TopicPartition(topic, p): OffsetSpec.for_timestamp(timestamp_ms) for p in parts},
                                 isolation_level=IsolationLevel.READ_UNCOMMITTED, request_timeout=ADMIN_TIMEOUT_S)
    found = {tp.partition: fut.result().offset for tp, fut in futures.items()}
    ends = end_offsets(settings, topic)
    return {p: (found[p] if found[p] >= 0 else ends.get(p, 0)) for p in sorted(found)}


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


def committed_offsets(settings: Settings, group_id: str, topic: str) -> dict[int, int]:
    admin = make_admin(settings)
    for attempt in range(20):
        futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)],
                                                    request_timeout=ADMIN_TIMEOUT_S)
        try:
            result = futures[group_id].result()
            break
        except KafkaException as exc:
            err = _error(exc)
            # right after the broker's first start the offsets topic is still being created
            if attempt == 19 or err is None or err.code() not in (
                    _Err.COORDINATOR_NOT_AVAILABLE, _Err.COORDINATOR_LOAD_IN_PROGRESS, _Err.NOT_COORDINATOR):
                raise
            time.sleep(0.5)
    return {
        tp.partition: tp.offset
        for tp in result.topic_partitions or ()
        if tp.topic == topic and tp.offset >= 0 and tp.error is None
    }


LAG_PROBE_MAX = 16  # a partition this close to its end is read to count its records exactly


def consumer_lag(settings: Settings, group_id: str, topic: str) -> dict[int, int]:
    """Records the group has not committed yet, per partition.

    A topic written in Kafka transactions (transactions.by_user) has a commit marker after each
    transaction's records; it takes an offset but no consumer ever receives it, so the group's offset
    stops one short of the end and an idle pipeline showed a lag of 1 per partition. A partition
    within LAG_PROBE_MAX of its end is read from the committed offset (read_committed, no group) and
    its lag is the records found, plus the offsets of a transaction still open (their records are on
    their way); farther behind, the offset difference stands (it counts markers too). A partition the
    group never committed on counts from its start.
    """
    ends = end_offsets(settings, topic)
    done = committed_offsets(settings, group_id, topic)
    lag = {p: end - done.get(p, 0) for p, end in ends.items()}
    near = {p: done.get(p, 0) for p, n in lag.items() if 0 < n <= LAG_PROBE_MAX}
    if near:
        committed = end_offsets(settings, topic, committed=True)
        stable = {p: min(committed.get(p, ends[p]), ends[p]) for p in near}
        for p, records in _records_left(settings, topic, near, stable).items():
            lag[p] = records + ends[p] - stable[p]
    return lag


def _records_left(settings: Settings, topic: str, starts: Mapping[int, int], ends: Mapping[int, int],
                  timeout_s: float = 2.0) -> dict[int, int]:
    """Per partition, the records between `starts` and `ends` (at most the last stable offsets) that a
    read_committed consumer receives: markers and aborted records are skipped. Partitions not read to
    their end in time are left out (logged): their offset difference stands."""
    consumer = make_consumer(settings, group_id=None, **{"enable.partition.eof": True})
    counts = dict.fromkeys(starts, 0)
    reached = {p for p in starts if starts[p] >= ends[p]}
    deadline = time.monotonic() + timeout_s
    try:
        consumer.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
        while len(reached) < len(starts) and time.monotonic() < deadline:
            batch = _consumed(consumer.consume(LAG_PROBE_MAX * len(starts), 0.2),
                              on_eof=lambda _t, p, offset: reached.add(p) if offset >= ends[p] else None)
            for r in batch:
                if r.offset < ends[r.partition]:
                    counts[r.partition] += 1
                if r.offset >= ends[r.partition] - 1:
                    reached.add(r.partition)
    finally:
        consumer.close()
    if len(reached) < len(starts):
        log.warning("lag of %s: partitions %s not read to their end within %.0fs, their offset difference is shown",
                    topic, sorted(set(starts) - reached), timeout_s)
    return {p: n for p, n in counts.items() if p in reached}


@dataclass(frozen=True)
class GroupMemberInfo:
    """One member of a consumer group as the broker describes it."""

    client_id: str
    host: str
    partitions: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class GroupInfo:
    group_id: str
    state: str  # e.g. STABLE, EMPTY, PREPARING_REBALANCE, DEAD (a group the broker does not know)
    members: tuple[GroupMemberInfo, ...]


def describe_group(settings: Settings, group_id: str) -> GroupInfo:
    """The group's state and its members with their assigned partitions (none: no process is consuming)."""
    admin = make_admin(settings)
    future = admin.describe_consumer_groups([group_id], request_timeout=ADMIN_TIMEOUT_S)[group_id]
    try:
        desc = future.result()
    except KafkaException as exc:
        err = _error(exc)
        if err is not None and err.code() == _Err.GROUP_ID_NOT_FOUND:
            return GroupInfo(group_id, "DEAD", ())
        raise
    members = tuple(
        GroupMemberInfo(m.client_id, m.host,
                        tuple(sorted((tp.topic, tp.partition) for tp in (m.assignment.topic_partitions or ()))))
        for m in desc.members or ())
    state = getattr(desc.state, "name", str(desc.state))
    return GroupInfo(group_id, state, members)


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


# --- consuming, for the processor -----------------------------------------------------------

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
        ends = {tp.partition: _watermarks(consumer, tp, cached=False)[1] for tp in tps}
        if any(end < 0 for end in ends.values()):
            raise KafkaUnavailable(f"could not read the end offsets of {topic}")
        starts = consumer.offsets_for_times([TopicPartition(topic, p, start_ms) for p in parts], timeout=10.0)
        stops = consumer.offsets_for_times([TopicPartition(topic, p, end_ms) for p in parts], timeout=10.0)
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


# --- producing with delivery confirmation ----------------------------------------------------

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


# --- transactions: exactly-once consume -> produce -> commit ------------------------------------

class TransactionalProducer(Producer):
    """A producer with a transactional.id; remembers where the current transaction stands so that
    `commit_member_transaction` and `begin_transaction` can be called again after a KafkaUnavailable."""

    offsets_sent: bool = False
    needs_abort: bool = False
    in_transaction: bool = False  # begun, and neither committed nor aborted yet
    lost: bool = False  # a call never returned: never call it again, not even close()
    began_at: float = 0.0  # time.monotonic() when the current transaction began
    timeout_s: float = 15.0  # its transaction.timeout.ms


def make_transactional_producer(settings: Settings, transactional_id: str, **overrides: Any) -> TransactionalProducer:
    """A producer for exactly-once batches: produce, then `commit_member_transaction` with the input's offsets.

    init_transactions fences any earlier producer with the same transactional_id (a previous
    instance of this processor) and aborts what it left open.
    """
    # short: a batch begins its transaction only once MongoDB is written, and a broker outage then
    # costs one timeout per attempt, not minutes
    cfg = {"transaction.timeout.ms": 15_000,
           **_producer_config(settings, overrides),
           "transactional.id": transactional_id}
    # librdkafka requires a message's delivery timeout to fit in the transaction's
    cfg["delivery.timeout.ms"] = min(cfg["delivery.timeout.ms"], cfg["transaction.timeout.ms"])
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


# --- exactly-once processing over several topics ------------------------------------------------

TopicPartitionKey = tuple[str, int]


class GroupMember:
    """A consumer-group member on several topics (the raw input and the by-user repartition topic),
    whose offsets are committed inside a transaction (`commit_member_transaction`).

    `on_change("assigned"|"revoked", [(topic, partition), ...])` runs inside `poll`.
    """

    def __init__(self, settings: Settings, topics: Sequence[str], group_id: str,
                 on_change: Callable[[str, list[TopicPartitionKey]], None], wait_s: float = 15.0,
                 **overrides: Any) -> None:
        self.topics = list(topics)
        self.consumer = make_consumer(settings, group_id=group_id, **overrides)
        try:
            deadline = time.monotonic() + wait_s
            for topic in self.topics:
                while not _partitions(self.consumer, topic, max(0.1, min(5.0, deadline - time.monotonic()))):
                    if time.monotonic() > deadline:
                        raise TopicMissing(f"topic {topic!r} does not exist (run `txnmon init`)")
                    time.sleep(0.2)

            def assigned(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
                on_change("assigned", sorted((tp.topic, tp.partition) for tp in partitions))

            def revoked(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
                on_change("revoked", sorted((tp.topic, tp.partition) for tp in partitions))

            self.consumer.subscribe(self.topics, on_assign=assigned, on_revoke=revoked, on_lost=revoked)
        except BaseException:
            self.consumer.close()
            raise

    def poll(self, timeout_ms: int, max_records: int) -> list[SourceRecord]:
        try:
            return poll_records(self.consumer, timeout_ms, max_records)
        except KafkaError as exc:
            raise KafkaUnavailable(f"poll failed: {exc}", retry_after=1.0) from exc

    def group_metadata(self) -> Any:
        return self.consumer.consumer_group_metadata()

    def committed(self, partitions: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """The group's committed offsets for these partitions (KafkaUnavailable if it cannot say)."""
        try:
            found = self.consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=10.0)
        except KafkaException as exc:
            raise KafkaUnavailable(f"reading committed offsets failed: {exc}") from exc
        return {(tp.topic, tp.partition): tp.offset for tp in found}

    def lag(self) -> int | None:
        try:
            return lag_of(self.consumer)
        except KafkaError:
            return None  # a metric is not worth failing a committed batch for

    def close(self) -> None:
        self.consumer.close()


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


def read_partition(settings: Settings, topic: str, partition: int, batch: int = 10_000,
                   stall_s: float = 30.0) -> Iterator[SourceRecord]:
    """Every committed record of one partition, from the beginning to its end (a state restore: a
    compacted changelog holds the latest value per key). The end is the partition-EOF event, which
    also covers transaction markers at the tail, where no record reaches the high-water mark."""
    consumer = make_consumer(settings, group_id=None, **{"enable.partition.eof": True})
    reached_end: list[bool] = []
    try:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=ADMIN_TIMEOUT_S)
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
