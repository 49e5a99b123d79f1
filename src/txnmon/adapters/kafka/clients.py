"""The client factories: producers, consumers and the admin client built from `Settings`, each
checked to reach a broker before it is handed out. librdkafka connects in the background, so
without that check a dead broker would only show on the first call. Overrides are librdkafka
(confluent-kafka) option names, passed through as given (`**{"linger.ms": 0}`); the client
refuses a name it does not know.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from txnmon.adapters.kafka.client_errors import _unavailable
from txnmon.errors import KafkaUnavailable
from txnmon.settings import Settings

# librdkafka's own log lines (connection failures, ...) go here; they are forwarded when the
# client is polled (consume, poll, flush), never printed to stderr.
_client_log = logging.getLogger("txnmon.adapters.kafka.librdkafka")

# how long an admin request (and a metadata lookup by one) may take
ADMIN_TIMEOUT_S = 15.0


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


def make_admin(settings: Settings) -> AdminClient:
    admin = AdminClient({"client.id": "txnmon-admin", "socket.timeout.ms": 15_000, **client_config(settings)})
    _check_reachable(admin, settings)
    return admin


def _producer_config(settings: Settings, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A producer's options: txnmon's defaults, then `overrides` (librdkafka names)."""
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


def check_reachable(client: Any, timeout_s: float) -> None:
    """Raise KafkaUnavailable unless a broker answers `client` within `timeout_s` (a readiness probe)."""
    try:
        client.list_topics(timeout=timeout_s)  # answered from a broker's metadata, not the client's cache
    except KafkaException as exc:
        raise KafkaUnavailable(f"no broker answered in {timeout_s:g}s: {exc}") from exc


def make_consumer(settings: Settings, *topics: str, group_id: str | None, **overrides: Any) -> Consumer:
    """A consumer that never auto-commits: the caller commits after its writes are acknowledged.

    It reads only committed transactional data (isolation.level=read_committed). With topics, a
    group member subscribes to them; a group-less consumer (`group_id=None`) is assigned all their
    partitions from their earliest offsets.
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
            # from the beginning, explicitly: the throwaway group has no committed offsets, and asking for
            # them right after a broker start met NOT_COORDINATOR and left the reader assigned and idle
            # (the bench's raw reader read 0 of 100,000 messages in 600 s)
            consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t in topics
                             for p in _partitions(consumer, t, 5.0)])
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
