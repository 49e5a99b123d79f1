"""No single message stops the pipeline, nothing is dropped in silence: against the real stack."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading

import pytest

from tests.fixtures.pipeline import (
    T0,
    produce,
    read_topic,
    run_until_idle,
    stored_ids,
    synthetic_rows,
    two_members_drain,
    tx_row,
)
from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore, RedriveRepository
from txnmon.core.collection_names import REJECTED
from txnmon.errors import ConfigError, KafkaUnavailable
from txnmon.jobs import dlq, triage
from txnmon.jobs.window_replay import WindowIncomplete, replay_window
from txnmon.services.metrics import ProcessorMetrics

pytestmark = pytest.mark.integration


def _raw(text: str) -> tuple[bytes, bytes]:
    return (b"U9", text.encode())


VALID_PREFIX = '{"transaction_id": "%s", "user_id": "U9", "payment_method": "UPI", '


def poison_messages() -> dict[str, tuple[bytes | None, bytes]]:
    """One message per input class that used to stop or stall a consumer group, with its DLQ reason."""
    ts = '"timestamp": "2025-09-30T10:00:00Z"'
    return {
        "bad_amount": _raw(VALID_PREFIX % "P1" + '"location": "X", "amount": 1' + "0" * 400 + ", " + ts + "}"),
        "bad_timestamp": _raw(VALID_PREFIX % "P2" + '"location": "X", "amount": 1, '
                              '"timestamp": "0001-01-01T00:30:00+01:00"}'),
        "bad_field": _raw(VALID_PREFIX % "P3" + '"location": "\\ud800", "amount": 1, ' + ts + "}"),
        "bad_field/deep": _raw(VALID_PREFIX % "P4" + '"location": "X", "amount": 1, ' + ts
                               + ', "extra": ' + "[" * 120 + "]" * 120 + "}"),
        "bad_field/product": _raw(VALID_PREFIX % "P5" + '"location": "X", "amount": 1, ' + ts
                                  + ', "product": {"sku": 1}}'),
        "bad_field/int64": _raw(VALID_PREFIX % "P6" + '"location": "X", "amount": 1, ' + ts
                                + ', "extra": 99999999999999999999}'),
    }


def test_a_mixed_stream_through_two_members_stores_every_valid_one_and_rejects_the_rest(settings_factory):
    s = settings_factory(batch_max_records=100)
    valid = synthetic_rows(1_200, users=40, seed=5)
    poison = poison_messages()
    huge = (b"U9", b'{"padding": "' + b"x" * 1_000_000 + b'"}')  # its DLQ copy must still fit the topic
    twin = tx_row("S000010", valid[10]["user_id"], T0, 1.0)  # an id already used, other content
    messages: list = []
    for i, row in enumerate(valid):
        messages.append(row)
        if i % 150 == 0:
            messages.extend(poison.values())
        if i == 600:
            messages.extend([huge, twin, dict(valid[20])])  # dict(valid[20]) is an identical repeat
    batch = [(m[0], m[1], None) if isinstance(m, tuple) else (m["user_id"].encode(), json.dumps(m).encode(), None)
             for m in messages]
    p1, p2 = two_members_drain(s, batch, **{"message.max.bytes": 2_000_000})
    assert p1.batches > 0 and p2.batches > 0, "both members worked and neither died"
    assert stored_ids(s, "transactions") == sorted(r["transaction_id"] for r in valid)
    store = MongoStore(s)
    reasons = sorted(d["reason"] for d in store.find(REJECTED))
    rounds = len(range(0, 1_200, 150))
    expected = sorted([r.split("/")[0] for r in poison] * rounds + ["too_large", "duplicate_id_conflict"])
    assert reasons == expected
    assert sum(kafka.consumer_lag(s, s.consumer_group, s.topic_raw).values()) == 0
    # the oversized message's DLQ copy was cut to fit, the rejected document keeps it whole
    dlq_records = read_topic(s, s.topic_dlq, len(expected))
    cut = [r for r in dlq_records if dict(r.headers).get("txnmon.truncated")]
    assert len(cut) == 1 and len(cut[0].value) == s.dlq_max_bytes
    assert int(dict(cut[0].headers)["txnmon.truncated"]) == len(huge[1])
    whole = store.find(REJECTED, {"reason": "too_large"})
    assert len(bytes(whole[0]["original"])) == len(huge[1])
    # the conflicting copy raised nothing and left the stored transaction as it was
    assert store.find_one("transactions", {"_id": "S000010"})["amount"] == valid[10]["amount"]


def test_a_conflicting_duplicate_in_a_later_batch_goes_to_the_dlq_without_an_alert(isolated_settings):
    s = isolated_settings
    produce(s, [tx_row("D1", "U1", T0, 100.0)])
    run_until_idle(s)
    produce(s, [tx_row("D1", "U1", T0, 100.0),  # the same message again: harmless
                tx_row("D1", "U2", T0 + dt.timedelta(minutes=1), 99_000.0)])  # other content: a conflict
    run_until_idle(s)
    store = MongoStore(s)
    assert [d["reason"] for d in store.find(REJECTED)] == ["duplicate_id_conflict"]
    assert store.find_one("transactions", {"_id": "D1"})["user_id"] == "U1"
    assert stored_ids(s, "alerts") == []  # 99,000 would have been high_amount


def test_concurrent_marks_keep_every_history_entry(isolated_settings):
    s = isolated_settings
    produce(s, [tx_row("C1", "U1", T0, 60_000)])
    run_until_idle(s)
    store = MongoStore(s)

    def mark_many(who: str) -> None:
        for i in range(10):
            triage.mark(store, "C1:high_amount", "true_positive" if i % 2 else "false_positive", f"{who}{i}", who)

    threads = [threading.Thread(target=mark_many, args=(name,)) for name in ("ana", "lee", "raj")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    history = store.find_one("alert_dispositions", {"_id": "C1:high_amount"})["history"]
    assert len(history) == 30 and {h["by"] for h in history} == {"ana", "lee", "raj"}


def test_a_redrive_that_kafka_refuses_leaves_every_record_redrivable(settings_factory):
    strict = settings_factory(max_message_bytes=300)
    produce(strict, [tx_row("R1", "U1", T0, note="x" * 400)])
    run_until_idle(strict)
    fixed = strict.model_copy(update={"max_message_bytes": 65536})
    down = fixed.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1", "kafka_bootstrap_timeout_ms": 500})
    with pytest.raises(KafkaUnavailable):
        dlq.redrive(down, "too_large")  # interrupted: Kafka never took the message
    record = MongoStore(fixed).find(REJECTED)[0]
    assert "redriven_at" not in record and "redrive_claim" not in record
    assert dlq.redrive(fixed, "too_large").sent == 1  # still re-drivable, right away
    assert dlq.redrive(fixed, "too_large").sent == 0  # and sent once
    assert dlq.redrive(fixed, "too_large", force=True).sent == 1  # unless the operator says it was lost


def test_a_redrive_that_died_after_claiming_is_redrivable_once_its_lease_ends(settings_factory):
    strict = settings_factory(max_message_bytes=300)
    produce(strict, [tx_row("R2", "U1", T0, note="x" * 400)])
    run_until_idle(strict)
    fixed = strict.model_copy(update={"max_message_bytes": 65536})
    store = MongoStore(fixed)
    ids = [d["_id"] for d in store.find(REJECTED)]
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    RedriveRepository(store).claim(ids, "a-run-that-was-killed", long_ago, stale_before=long_ago)
    assert dlq.redrive(fixed, "too_large", lease=dt.timedelta(hours=2)).claimed_elsewhere == 1
    assert dlq.redrive(fixed, "too_large").sent == 1  # the default lease is long over


def test_a_window_replay_that_cannot_reach_its_end_fails_instead_of_reporting_success(isolated_settings,
                                                                                    monkeypatch):
    s = isolated_settings
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    produce(s, [tx_row(f"W{i}", "U1", T0 + dt.timedelta(minutes=i)) for i in range(5)])
    run_until_idle(s)  # the window replay reads what the processor re-keyed by user
    monkeypatch.setattr(kafka, "poll_window", lambda window, timeout_ms, max_records: [])  # a read that stalls
    with pytest.raises(WindowIncomplete, match="end offsets"):
        replay_window(s, before, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5), stall_s=1)


def test_metrics_listen_on_loopback_and_a_taken_port_is_a_clear_error():
    first = ProcessorMetrics()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first.serve(port)
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    with pytest.raises(ConfigError, match="METRICS_PORT"):
        ProcessorMetrics().serve(port)
