"""The client factories' overrides: librdkafka option names pass through to the client, and a name
it does not know (kafka-python's, say) is refused at once, before any broker is asked."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaException

from txnmon.adapters.kafka import clients
from txnmon.errors import KafkaUnavailable
from txnmon.settings import load_settings

# no broker listens there: a factory that accepted its options fails on the reachability check
DEAD = {"kafka_bootstrap_servers": "127.0.0.1:1", "kafka_bootstrap_timeout_ms": 300}


def test_librdkafka_names_override_the_defaults():
    cfg = clients._producer_config(load_settings(**DEAD), {"linger.ms": 0, "message.max.bytes": 2_000_000})
    assert cfg["linger.ms"] == 0 and cfg["message.max.bytes"] == 2_000_000
    assert cfg["acks"] == "all" and cfg["bootstrap.servers"] == "127.0.0.1:1"


@pytest.mark.parametrize("make", [
    lambda s: clients.make_producer(s, **{"linger.ms": 0}),
    lambda s: clients.make_consumer(s, group_id=None, **{"max.poll.interval.ms": 600_000}),
])
def test_a_factory_given_librdkafka_names_gets_as_far_as_the_broker(make):
    with pytest.raises(KafkaUnavailable, match=r"127\.0\.0\.1:1"):
        make(load_settings(**DEAD))


@pytest.mark.parametrize(("make", "name"), [
    (lambda s: clients.make_producer(s, linger_ms=0), "linger_ms"),
    (lambda s: clients.make_producer(s, max_request_size=2_000_000), "max_request_size"),
    (lambda s: clients.make_consumer(s, group_id=None, auto_offset_reset="earliest"), "auto_offset_reset"),
])
def test_kafka_python_names_are_refused_not_translated(make, name):
    with pytest.raises(KafkaException, match=name):
        make(load_settings(**DEAD))
