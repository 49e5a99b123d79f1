"""Topics and consumer groups through the admin client: create the pipeline's topics with the
partition counts chosen here, delete, describe and require them, and describe a group's members.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import NewTopic

from txnmon.adapters.kafka.client_errors import _MISSING, _Err, _error, _retriable, retrying_read
from txnmon.adapters.kafka.clients import ADMIN_TIMEOUT_S, make_admin
from txnmon.errors import TopicMissing
from txnmon.settings import Settings


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
    existing = set(retrying_read(lambda: admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics, "listing topics"))
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

    def describe() -> list[TopicInfo]:
        futures = admin.describe_topics(TopicCollection(names), request_timeout=ADMIN_TIMEOUT_S)
        infos = []
        for name in names:
            try:
                desc = futures[name].result()
            except KafkaException as exc:
                err = _error(exc)
                if err is not None and err.code() not in _MISSING and _retriable(err):
                    raise  # transient (a leader being elected, a timeout): the whole call is tried again
                if err is not None and (err.code() >= 0 or err.code() == _Err._UNKNOWN_TOPIC):
                    continue  # the broker's answer for this topic is an error: it does not exist (for us)
                raise
            infos.append(TopicInfo(desc.name, len(desc.partitions)))
        return infos

    return retrying_read(describe, f"describing topics {', '.join(names)}")


def require_topics(settings: Settings, *topics: str) -> None:
    """Fail fast (TopicMissing) instead of letting a producer block on a topic that is not there."""
    found = {info.name for info in describe_topics(settings, topics)}
    missing = [t for t in topics if t not in found]
    if missing:
        raise TopicMissing(f"topic(s) {', '.join(missing)} do not exist (run `txnmon init` or `make up`)")


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
    try:
        # a coordinator still loading (right after a broker's start) is waited out briefly
        desc = retrying_read(
            lambda: admin.describe_consumer_groups([group_id], request_timeout=ADMIN_TIMEOUT_S)[group_id].result(),
            f"describing group {group_id}")
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
