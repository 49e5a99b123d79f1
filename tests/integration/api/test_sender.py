"""The API's sender on the real broker: a send waits for its own acknowledgements only (not for another
caller's messages still in flight), and a producer broken by a fatal error is replaced on the next send."""

from __future__ import annotations

import json
import threading
import time

import pytest
from confluent_kafka import KafkaError

from txnmon.adapters import kafka

pytestmark = pytest.mark.integration


def _messages(prefix: str, n: int) -> list[kafka.Message]:
    return [(f"u{i}".encode(), json.dumps({"transaction_id": f"{prefix}-{i}"}).encode(), None) for i in range(n)]


def test_a_send_does_not_wait_for_another_callers_messages(settings_factory):
    settings = settings_factory()
    sender = kafka.ConfirmedSender(settings, timeout_s=8)
    try:
        # a topic that does not exist (auto-creation is off): its messages wait in the producer until
        # librdkafka gives up on them; a flush of the whole producer would wait for them too
        stuck: list[list[int]] = []
        blocker = threading.Thread(target=lambda: stuck.append(sender.send(f"{settings.topic_raw}.missing",
                                                                           _messages("stuck", 3))))
        blocker.start()
        time.sleep(0.3)
        started = time.monotonic()
        assert sender.send(settings.topic_raw, _messages("ok", 200)) == []
        assert time.monotonic() - started < 5  # not the other caller's 8 s (room for a loaded machine)
        assert blocker.is_alive()  # the other caller is still waiting for its own
        blocker.join(20)
        assert stuck == [[0, 1, 2]]  # not acknowledged: answered 503, sent again by the client
        on_topic = [r for p in range(settings.topic_partitions)
                    for r in kafka.read_partition(settings, settings.topic_raw, p)]
        assert len(on_topic) == 200
    finally:
        sender.close(5)


def test_a_fatal_error_replaces_the_producer_on_the_next_send(settings_factory):
    settings = settings_factory()
    sender = kafka.ConfirmedSender(settings, timeout_s=4)
    try:
        first = sender._producer
        sender._on_error(KafkaError(KafkaError._FATAL, "fenced", fatal=True))  # what librdkafka reports
        assert sender.send(settings.topic_raw, _messages("after", 5)) == []
        assert sender._producer is not first
        sender.check_reachable(2)
    finally:
        sender.close(5)
