"""The streaming processor against the real Kafka broker and MongoDB-wire server."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter

import pytest

from tests.fixtures.pipeline import (
    T0,
    expected_alert_ids,
    produce,
    read_topic,
    run_until_idle,
    start_in_thread,
    stored_ids,
    synthetic_rows,
    tx_row,
    wait_for,
)
from txnmon.adapters.mongo import MongoStore
from txnmon.jobs import replay
from txnmon.services.processor import Processor
from txnmon.services.wiring import Wired, kafka_and_mongo
from txnmon.settings import SAMPLE_CSV

pytestmark = pytest.mark.integration


def test_seed_sample_ends_as_100_documents_with_one_high_amount_alert(isolated_settings):
    s = isolated_settings
    summary = replay.replay_csv(s, SAMPLE_CSV)
    assert summary.rows_sent == 100
    processor = run_until_idle(s)
    db = MongoStore(s)
    assert db.count("transactions") == 100
    alerts = db.find("alerts")
    by_rule = Counter(a["rule"] for a in alerts)
    assert by_rule["high_amount"] == 1 and by_rule["velocity"] == 0
    high = next(a for a in alerts if a["rule"] == "high_amount")
    assert (high["_id"], high["transaction_id"], high["user_id"], high["amount"]) == (
        "3:high_amount", "3", "U001", 56000.0)
    assert high["severity"] == "high" and "56,000" in high["reason"]
    assert set(high) >= {"alert_id", "rule", "severity", "reason", "location", "event_time", "created_at"}
    t3 = db.find_one("transactions", {"_id": "3"})
    assert t3["alert_flag"] is True and t3["value_category"] == "High" and t3["risk_score"] > 0
    assert t3["event_time"] == dt.datetime(2025, 9, 30, 10, 7, tzinfo=dt.UTC)
    assert db.aggregate("transactions", [{"$group": {"_id": None, "r": {"$sum": "$amount"}}}])[0]["r"] \
        == 777_650
    enriched = read_topic(s, s.topic_enriched, 100)
    assert len(enriched) == 100
    assert {json.loads(r.value)["transaction_id"] for r in enriched} == {str(i) for i in range(1, 101)}
    assert processor.metrics.stored._value.get() == 100


def test_a_burst_of_five_checkouts_in_five_minutes_trips_velocity_and_a_basket_does_not(isolated_settings):
    s = isolated_settings
    # five separate purchases 70 s apart: the 4th checkout within 10 minutes trips velocity
    burst = [tx_row(f"B{i}", "U777", T0 + dt.timedelta(seconds=70 * i)) for i in range(5)]
    # five items in one minute, same method and place: one multi-item checkout
    basket = [tx_row(f"K{i}", "U778", T0 + dt.timedelta(seconds=10 * i)) for i in range(5)]
    produce(s, burst + basket)
    run_until_idle(s)
    assert stored_ids(s, "alerts") == ["B3:velocity", "B4:velocity"]
    alert = MongoStore(s).find_one("alerts", {"_id": "B4:velocity"})
    assert alert["severity"] == "medium" and "5 checkouts (5 transactions) in 4 min" in alert["reason"]
    assert [e["signal"] for e in alert["explanation"]["signals"]] == ["velocity"]
    assert alert["explanation"]["counted"] == ["B0", "B1", "B2", "B3"]


HOSTILE = [
    (b"U1", b"\xff\xfe\xfa", "not_utf8"),
    (b"U1", b"{broken", "not_json"),
    (b"U1", b"[1,2,3]", "not_object"),
    (b"U1", json.dumps({"transaction_id": "X1", "user_id": "U1"}).encode(), "missing_field"),
    (b"U1", json.dumps({**tx_row("X2", "U1", T0), "amount": "ten"}).encode(), "bad_amount"),
    (b"U1", json.dumps({**tx_row("X3", "U1", T0), "amount": -5}).encode(), "bad_amount"),
    (b"U1", json.dumps({**tx_row("X4", "U1", T0), "timestamp": "someday"}).encode(), "bad_timestamp"),
    (b"U1", json.dumps({**tx_row("X5", "U1", T0), "timestamp": "2099-01-01T00:00:00Z"}).encode(),
     "future_timestamp"),
    (b"U1", json.dumps({**tx_row("X6", "U1", T0), "$set": {"amount": 0}}).encode(), "forbidden_key"),
    (b"U1", json.dumps({**tx_row("X7", "U1", T0), "meta": {"a.b": 1}}).encode(), "forbidden_key"),
    (b"U1", json.dumps({**tx_row("X8", "U1", T0), "blob": "x" * 70_000}).encode(), "too_large"),
    (None, b"", "not_json"),
]


def test_mixed_stream_stores_every_valid_message_once_and_dlqs_every_invalid_one(isolated_settings):
    s = isolated_settings
    valid = [tx_row(f"V{i}", f"U{i % 5}", T0 + dt.timedelta(minutes=i)) for i in range(40)]
    messages: list = []
    for i, row in enumerate(valid):
        messages.append(row)
        if i < len(HOSTILE):
            key, value, _ = HOSTILE[i]
            messages.append((key, value))
    produce(s, messages)
    run_until_idle(s)
    assert stored_ids(s, "transactions") == sorted(r["transaction_id"] for r in valid)
    dlq = read_topic(s, s.topic_dlq, len(HOSTILE))
    assert len(dlq) == len(HOSTILE)
    reasons = Counter(dict(r.headers)["txnmon.reason"].decode() for r in dlq)
    assert reasons == Counter(reason for _, _, reason in HOSTILE)
    originals = {value for _, value, _ in HOSTILE}
    assert {r.value for r in dlq} == originals
    for r in dlq:
        h = dict(r.headers)
        assert h["txnmon.source.topic"].decode() == s.topic_raw
        assert int(h["txnmon.source.offset"]) >= 0 and h["txnmon.detail"]


def test_replaying_the_same_messages_changes_nothing(isolated_settings):
    s = isolated_settings
    rows = synthetic_rows(600, users=20)
    produce(s, rows)
    run_until_idle(s)
    db = MongoStore(s)
    first = {d["_id"]: d["processed_time"] for d in db.find("transactions", projection={"processed_time": 1})}
    alerts_first = stored_ids(s, "alerts")
    produce(s, rows)  # the same file again
    run_until_idle(s)
    assert {d["_id"]: d["processed_time"] for d in db.find("transactions", projection={"processed_time": 1})} == first
    assert stored_ids(s, "alerts") == alerts_first
    assert set(alerts_first) == expected_alert_ids(rows, s)
    assert len(first) == 600


def test_two_processes_in_one_group_equal_one_process(settings_factory):
    rows = synthetic_rows(3000, users=60, seed=11)
    solo = settings_factory()
    produce(solo, rows)
    run_until_idle(solo)
    pair = settings_factory(batch_max_records=200)
    (p1, t1), (p2, t2) = start_in_thread(pair, idle_s=4), start_in_thread(pair, idle_s=4)
    # produce only once the group has split the partitions, so both members have work
    wait_for(lambda: bool(p1.assigned) and bool(p2.assigned), 60, "both members to be assigned partitions")
    assert sorted(p1.assigned + p2.assigned) == [0, 1, 2]
    produce(pair, rows)
    t1.join(180)
    t2.join(180)
    assert not t1.is_alive() and not t2.is_alive()
    assert p1.batches > 0 and p2.batches > 0, "both members should have processed batches"
    assert stored_ids(pair, "transactions") == stored_ids(solo, "transactions")
    assert stored_ids(pair, "alerts") == stored_ids(solo, "alerts")
    assert set(stored_ids(solo, "alerts")) == expected_alert_ids(rows, solo)
    assert len(stored_ids(solo, "transactions")) == 3000


def test_a_member_restores_only_partitions_it_owns_when_a_second_one_joins_before_its_first_batch(isolated_settings):
    """The first member is assigned every partition; the second joins before the first has any record
    (so before its restore). The first must restore only what it owns at restore time: before, the
    revoked partitions stayed pending, it loaded the other member's users and later tombstoned them."""
    s = isolated_settings
    restores: list[tuple[int, tuple[int, ...]]] = []  # (partition restored, first member's assignment then)

    def recording(processor: Processor) -> Wired:
        wired = kafka_and_mongo(processor)
        store = wired.state

        class Recording:
            def restore(self, partition: int):
                restores.append((partition, tuple(processor.assigned)))
                return store.restore(partition)

        wired.state = Recording()
        return wired

    first = Processor(s, wiring=recording)
    first_thread = threading.Thread(target=first.run, kwargs={"max_idle_s": 8}, daemon=True)
    first_thread.start()
    wait_for(lambda: first.assigned == [0, 1, 2], 60, "the first member to own every partition")
    second, second_thread = start_in_thread(s, idle_s=8)
    wait_for(lambda: bool(first.assigned) and bool(second.assigned)
             and sorted(first.assigned + second.assigned) == [0, 1, 2], 60, "the group to split the partitions")
    produce(s, synthetic_rows(300, users=30, seed=5))
    first_thread.join(120)
    second_thread.join(120)
    assert not first_thread.is_alive() and not second_thread.is_alive()
    assert restores, "the first member should have restored its partitions before its first batch"
    assert all(p in owned for p, owned in restores), restores
