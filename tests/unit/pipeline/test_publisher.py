"""TransactionalPublisher after a lost producer: whether the lost commit happened is unknown, so the
group's offsets are read before the batch is sent again, however many attempts that read takes.
The Kafka calls are in-memory doubles (no broker): what is tested is the publisher's decision."""

from __future__ import annotations

import pytest

from txnmon.errors import KafkaUnavailable, ProducerLost
from txnmon.pipeline import publisher as publisher_module
from txnmon.pipeline import retry
from txnmon.pipeline.ports import Outbound
from txnmon.pipeline.publisher import TransactionalPublisher

TP = ("transactions.by_user", 0)


class Producer:
    in_transaction = False


class Broker:
    """The group's committed offsets and every committed transaction. The first commit reaches the
    broker but its answer is lost with the producer (ProducerLost); reading the group's offsets fails
    `offsets_failures` times first."""

    def __init__(self, offsets_failures: int) -> None:
        self.group_offsets: dict[tuple[str, int], int] = {}
        self.transactions: list[dict[tuple[str, int], int]] = []
        self.offsets_failures = offsets_failures
        self.lose_next_commit = True

    # the member's offsets read
    def committed(self, partitions):
        if self.offsets_failures:
            self.offsets_failures -= 1
            raise KafkaUnavailable("reading committed offsets failed: coordinator away")
        return {tp: self.group_offsets[tp] for tp in partitions if tp in self.group_offsets}

    def group_metadata(self):
        return None

    # the adapter's transactional calls, as the publisher uses them
    def begin_transaction(self, producer):
        producer.in_transaction = True

    def produce_to(self, producer, topic, message, partition=None, timestamp=0):
        pass

    def commit_member_transaction(self, producer, member, offsets):
        self.transactions.append(dict(offsets))
        self.group_offsets.update(offsets)
        producer.in_transaction = False
        if self.lose_next_commit:
            self.lose_next_commit = False
            raise ProducerLost("commit_transaction still blocked after 15s")

    def close_producer(self, producer):
        pass


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(retry.time, "sleep", lambda s: None)


def publish_through_retries(monkeypatch, broker: Broker) -> None:
    for name in ("begin_transaction", "produce_to", "commit_member_transaction", "close_producer"):
        monkeypatch.setattr(publisher_module.kafka, name, getattr(broker, name))
    pub = TransactionalPublisher(Producer, broker, type("Topics", (), {"topic_by_user": "by_user"}))
    out = Outbound(by_user=[(b"U1", b"{}", None)], by_user_timestamps=[0])
    retry.with_retry(lambda: pub.publish(out, {TP: 5}), sink="kafka-transaction", should_stop=lambda: False)


@pytest.mark.parametrize("offsets_failures", [0, 1, 3])
def test_a_batch_whose_commit_was_lost_with_its_producer_is_committed_once(monkeypatch, offsets_failures):
    broker = Broker(offsets_failures)
    publish_through_retries(monkeypatch, broker)
    # before: a failed offsets read let the next attempt skip the check and commit the batch again
    assert broker.transactions == [{TP: 5}]
    assert broker.offsets_failures == 0  # the check was done, after its failures


def test_a_lost_commit_that_did_not_happen_is_sent_again(monkeypatch):
    broker = Broker(offsets_failures=1)
    real_commit = broker.commit_member_transaction

    def lost_before_reaching_the_broker(producer, member, offsets):
        if broker.lose_next_commit:
            broker.lose_next_commit = False
            raise ProducerLost("send_offsets_to_transaction still blocked")
        real_commit(producer, member, offsets)

    broker.commit_member_transaction = lost_before_reaching_the_broker  # type: ignore[method-assign]
    publish_through_retries(monkeypatch, broker)
    assert broker.transactions == [{TP: 5}]
