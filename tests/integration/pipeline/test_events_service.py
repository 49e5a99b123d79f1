"""Issue #31: `txnmon events` on the real Kafka and MongoDB. A generated day's carts, stock events and
reviews, replayed to their topics with a few bad records, end up stored once each by `_id` and the bad
ones in `rejected` with their reason; a crash after the writes and before the commit, then a restart,
leaves the same collections; reading everything again (a new group) changes nothing. And `txnmon dlq
redrive` sends each record back to the topic it came from."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.fixtures.pipeline import ROOT, TXNMON, env_for, read_topic
from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import CART_EVENTS, REJECTED, REVIEWS, STOCK_EVENTS
from txnmon.jobs import dlq, replay
from txnmon.synthetic.events import generate_events, write_events
from txnmon.synthetic.generator import GeneratorSpec, generate

pytestmark = pytest.mark.integration
COLLECTIONS = {"carts": (CART_EVENTS, "event_id"), "stock": (STOCK_EVENTS, "event_id"),
               "reviews": (REVIEWS, "review_id")}


def run_events(settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TXNMON, "events", "--exit-when-idle", "2", *args], env=env_for(settings, **env), cwd=ROOT,
                          capture_output=True, text=True, timeout=240)


def snapshot(settings) -> dict[str, dict]:
    store = MongoStore(settings)
    out = {name: {d["_id"]: d for d in store.find(name)} for name, _ in COLLECTIONS.values()}
    out[REJECTED] = {d["_id"]: (d["reason"], d["stage"]) for d in store.find(REJECTED)}
    return out


def test_events_are_stored_once_bad_ones_rejected_and_a_crash_or_a_redelivery_changes_nothing(settings_factory,
                                                                                             tmp_path):
    s = settings_factory(create_topics=False, batch_max_records=40)
    kafka.ensure_topics(s, s.init_topics)
    spec = GeneratorSpec(rows=50, users=8, seed=5)
    frames = generate_events(generate(spec), spec, ["carts", "stock", "reviews"])
    for kind, path in write_events(frames, tmp_path).items():
        replay.replay_csv(s, path, kind=kind)  # what `txnmon replay --kind` runs
    first_cart = json.loads(frames["carts"].iloc[0].dropna().to_json())
    bad = {s.topic_carts: [(b"U1", b"not json"),
                           (first_cart["user_id"].encode(), json.dumps({**first_cart, "cart_id": "C-other"}).encode())],
           s.topic_inventory: [(b"P", json.dumps({"event_id": "S-bad", "product_id": "P", "location": "Pune",
                                                  "quantity_on_hand": 3, "delta": 1, "source": "wms",
                                                  "timestamp": "2025-10-01T10:00:00Z"}).encode())],
           s.topic_reviews: [(b"P", json.dumps({"review_id": "R-bad", "user_id": "U1", "product_id": "P",
                                                "rating": 9, "text": "?", "timestamp": "2025-10-01T10:00:00Z"}
                                               ).encode())]}
    producer = kafka.make_producer(s)
    for topic, messages in bad.items():
        kafka.send_all(producer, topic, messages)
    producer.flush()

    # killed after its second batch was written and before its offsets were committed, then restarted
    crashed = run_events(s, TXNMON_FAILPOINTS="events-written@2")
    assert crashed.returncode == 137, crashed.stdout + crashed.stderr
    done = run_events(s)
    assert done.returncode == 0, done.stdout + done.stderr
    after = snapshot(s)
    for kind, (collection, id_field) in COLLECTIONS.items():
        expected = sorted(str(i) for i in frames[kind][id_field])
        assert sorted(after[collection]) == expected, kind  # every good event, once
    assert after[CART_EVENTS][str(first_cart["event_id"])]["cart_id"] == first_cart["cart_id"]  # the first is kept
    reasons = sorted(reason for reason, _ in after[REJECTED].values())
    assert reasons == ["bad_field", "bad_field", "duplicate_id_conflict", "not_json"]
    assert {d.split(":")[0] for d in after[REJECTED]} == {s.topic_carts, s.topic_inventory, s.topic_reviews}
    dlq_records = read_topic(s, s.topic_dlq, 4)
    positions = {(dict(r.headers)["txnmon.source.topic"], dict(r.headers)["txnmon.source.offset"]) for r in dlq_records}
    assert len(positions) == 4  # at-least-once: a copy may be there twice after the crash, none is missing

    # the whole topics read again by another group: nothing stored changes
    again = run_events(s, "--group", f"{s.events_group}-again")
    assert again.returncode == 0, again.stdout + again.stderr
    assert snapshot(s) == after


def test_redrive_sends_each_record_back_to_the_topic_it_came_from(settings_factory):
    s = settings_factory(create_topics=False)
    kafka.ensure_topics(s, s.init_topics)
    store = MongoStore(s)
    store.insert_missing(REJECTED, [
        {"_id": f"{topic}:0:{n}", "reason": "bad_field", "stage": "validate", "key": b"k",
         "source": {"topic": topic, "partition": 0, "offset": n}, "original": f"fixed {n}".encode()}
        for n, topic in enumerate([s.topic_reviews, s.topic_carts, s.topic_inventory, s.topic_raw])])
    assert dlq.redrive(s, "bad_field").sent == 4
    for n, topic in enumerate([s.topic_reviews, s.topic_carts, s.topic_inventory, s.topic_raw]):
        [back] = read_topic(s, topic, 1)
        assert back.value == f"fixed {n}".encode()
        assert dict(back.headers)["txnmon.redrive_of"] == f"{topic}:0:{n}".encode()
