"""Admin and offset reads right after a topic is created: the broker answers NOT_LEADER_FOR_PARTITION or
shows partitions without a leader for a moment (it killed a `make bench` run at its restore step).
The admin client is an in-memory double that answers as the broker did; no network."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException

from txnmon.adapters.kafka import admin as admin_module
from txnmon.adapters.kafka import client_errors
from txnmon.adapters.kafka import offsets as offsets_module
from txnmon.errors import KafkaUnavailable

TOPIC = "transactions.state"


class Answer:
    def __init__(self, value=None, error: int | None = None) -> None:
        self.value, self.error = value, error

    def result(self):
        if self.error is not None:
            raise KafkaException(KafkaError(self.error))
        return self.value


class NewTopicAdmin:
    """A topic of two partitions just created: the first metadata shows no leader for partition 1,
    the first offsets request answers NOT_LEADER_FOR_PARTITION, then the broker is ready."""

    def __init__(self, not_leader_answers: int = 1) -> None:
        self.metadata_calls = 0
        self.not_leader_answers = not_leader_answers
        self.offsets_calls = 0

    def list_topics(self, topic=None, timeout=None):
        self.metadata_calls += 1
        leader_of_1 = -1 if self.metadata_calls == 1 else 0
        parts = {p: SimpleNamespace(id=p, leader=leader_of_1 if p == 1 else 0, error=None) for p in (0, 1)}
        return SimpleNamespace(topics={TOPIC: SimpleNamespace(error=None, partitions=parts)})

    def list_offsets(self, requests, isolation_level=None, request_timeout=None):
        self.offsets_calls += 1
        failing = self.offsets_calls <= self.not_leader_answers
        return {tp: Answer(error=KafkaError.NOT_LEADER_FOR_PARTITION) if failing and tp.partition == 1
                else Answer(SimpleNamespace(offset=10 + tp.partition)) for tp in requests}

    def describe_topics(self, names, request_timeout=None):
        self.offsets_calls += 1
        failing = self.offsets_calls <= self.not_leader_answers
        return {TOPIC: Answer(error=KafkaError.LEADER_NOT_AVAILABLE) if failing
                else Answer(SimpleNamespace(name=TOPIC, partitions=[0, 1])),
                "missing": Answer(error=KafkaError.UNKNOWN_TOPIC_OR_PART)}


@pytest.fixture
def admin(monkeypatch):
    made = NewTopicAdmin()
    monkeypatch.setattr(offsets_module, "make_admin", lambda settings: made)
    monkeypatch.setattr(admin_module, "make_admin", lambda settings: made)
    monkeypatch.setattr(client_errors, "READ_RETRY_DELAYS_S", (0.0,) * 8, raising=False)  # no wait in tests
    return made


def test_end_offsets_of_a_topic_just_created_wait_for_its_leaders(admin):
    assert offsets_module.end_offsets(None, TOPIC) == {0: 10, 1: 11}  # before: NOT_LEADER_FOR_PARTITION raised
    assert admin.offsets_calls == 2  # the leaderless metadata was not taken for the answer


def test_end_offsets_still_failing_raise_kafka_unavailable(admin):
    admin.not_leader_answers = 100
    with pytest.raises(KafkaUnavailable, match="NOT_LEADER_FOR_PARTITION"):
        offsets_module.end_offsets(None, TOPIC)


def test_describe_topics_waits_out_a_leader_election_and_skips_missing_topics(admin):
    assert admin_module.describe_topics(None, [TOPIC, "missing"]) == [admin_module.TopicInfo(TOPIC, 2)]
    assert admin.offsets_calls == 2  # before: the topic being elected was reported as not existing
