"""Issue #31: the stock and sentiment ops alerts through the whole path. A small generated day with
plentiful stock (every opening count 100 times larger, no restock: a clean day) replayed to Kafka, with
one constructed pair that sells one unit every 6 minutes until it runs out (tests/fixtures/stock_day.py),
and reviews of three products over the day before and the day, one of which turns negative at noon;
`txnmon stream` then `txnmon events` run until idle, reading in small batches so the analyses walk in
many steps. The stock-out is predicted at least STOCK_LEAD_TIME_MINUTES before it happens, the drop
raises exactly one `sentiment_drop`, the clean pairs and products raise nothing, and each of these alerts
is queued in the notifications outbox once, also after the service runs again."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from typing import Any

import pytest

from tests.fixtures.pipeline import ROOT, TXNMON, env_for
from tests.fixtures.stock_day import DAY, START, STEADY, STEADY_EVERY, STEADY_FROM, STEADY_OPENING, STEADY_OUT
from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import NOTIFICATIONS, OPS_ALERTS
from txnmon.core.sentiment import SENTIMENT_DROP
from txnmon.core.stock import STOCK_DEPLETION, STOCK_OUT, key_id
from txnmon.jobs import replay
from txnmon.notifications.routes import ops_alert_event
from txnmon.pipeline.event_sinks import closed_event_time
from txnmon.services.events_wiring import StoredEventTime
from txnmon.synthetic.events import generate_events, write_events
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv
from txnmon.synthetic.stock_reviews import TEXTS

pytestmark = pytest.mark.integration
KINDS = (STOCK_DEPLETION, STOCK_OUT, SENTIMENT_DROP)
ROUTES = """
version: "1"
destinations:
  ops: {type: webhook, url_env: TXNMON_NOTIFY_OPS_URL, secret_env: TXNMON_NOTIFY_OPS_SECRET}
routes:
  - {name: ops, events: [stock_depletion, stock_out, sentiment_drop], to: [ops]}
"""
# a 6-hour window against the day before keeps the reviews few (as tests/integration/batch/test_sentiment.py)
SENTIMENT = {"sentiment_window_hours": 6, "sentiment_baseline_days": 1, "sentiment_min_reviews": 5}
BAD, CLEAN = "Bad Kettle", ("Good Lamp", "Fine Mug")
TURNS_BAD = START + dt.timedelta(hours=12)


def run(settings: Any, command: str) -> None:
    done = subprocess.run([TXNMON, command, "--exit-when-idle", "3"], env=env_for(settings), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def stamp(at: dt.datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def steady_sales() -> list[dict[str, Any]]:
    product, city = STEADY
    return [{"transaction_id": f"steady-{i:04d}", "user_id": f"su{i % 50}", "amount": 30.0, "payment_method": "UPI",
             "location": city, "product": product, "quantity": 1, "status": "success", "type": "purchase",
             "timestamp": stamp(STEADY_FROM + STEADY_EVERY * (i + 1))} for i in range(STEADY_OPENING + 20)]


def reviews() -> list[dict[str, Any]]:
    """Every 30 minutes from a day before START to its end, a review of each product: the clean ones in a
    steady mix of 5, 4, 4, 3 stars; BAD as well until TURNS_BAD, then 1 star. (The reviews' marks are
    what moves closed event time on: the clean day's stock events are all at its start.)"""
    out = []
    for i in range(2 * 48):
        at = START - dt.timedelta(days=1) + i * dt.timedelta(minutes=30)
        for j, product in enumerate((BAD, *CLEAN)):
            rating = 1 if product == BAD and at >= TURNS_BAD else (5, 4, 4, 3)[i % 4]
            out.append({"review_id": f"R-{i:03d}-{j}", "user_id": f"U{(7 * i + j) % 40}", "product_id": product,
                        "rating": rating, "text": TEXTS[rating][(i + j) % 3], "timestamp": stamp(at)})
    return out


def send(settings: Any, topic: str, key: str, rows: list[dict[str, Any]]) -> None:
    producer = kafka.make_producer(settings)
    kafka.send_all(producer, topic, [(str(r[key]).encode(), json.dumps(r).encode()) for r in rows])
    producer.flush()


def test_a_stock_out_is_predicted_the_lead_time_ahead_a_drop_alerts_once_and_a_clean_day_raises_none(
        settings_factory, tmp_path):
    (tmp_path / "routes.yaml").write_text(ROUTES)
    s = settings_factory(create_topics=False, batch_max_records=100, events_lateness_seconds=60,
                         notify_routes_file=tmp_path / "routes.yaml", **SENTIMENT)
    kafka.ensure_topics(s, s.init_topics)
    spec = GeneratorSpec(rows=300, users=40, seed=11, start=DAY)
    txs = generate(spec)
    frames = generate_events(txs, spec, ["stock"])
    stock = frames["stock"]
    stock = stock[stock["label"] == "opening"].copy()  # plentiful: a hundred times the opening, no restock
    stock["quantity_on_hand"] = stock["quantity_on_hand"].astype(int) * 100
    frames["stock"] = stock
    write_csv(txs, tmp_path / "tx.csv")
    replay.replay_csv(s, tmp_path / "tx.csv")
    send(s, s.topic_raw, "user_id", steady_sales())
    replay.replay_csv(s, write_events(frames, tmp_path)["stock"], kind="stock")
    product, city = STEADY
    send(s, s.topic_inventory, "product_id", [{"event_id": "steady-open", "product_id": product, "location": city,
                                               "quantity_on_hand": STEADY_OPENING, "timestamp": stamp(START),
                                               "source": "test"}])
    send(s, s.topic_reviews, "product_id", reviews())

    run(s, "stream")
    run(s, "events")
    store = MongoStore(s)
    closed = closed_event_time(StoredEventTime(s, store), s, now=dt.datetime.now(dt.UTC), quiet_after_s=0)
    assert closed is not None and closed > STEADY_OUT + dt.timedelta(hours=1), closed  # the walks got past both
    alerts = {a["_id"]: a for a in store.find(OPS_ALERTS, {"kind": {"$in": list(KINDS)}})}

    # the stock-out, predicted with the lead time asked for; the generated (plentiful) pairs raise nothing
    stock_alerts = [a for a in alerts.values() if a["kind"] in (STOCK_DEPLETION, STOCK_OUT)]
    assert {a["key"] for a in stock_alerts} == {key_id(*STEADY)}, stock_alerts
    [depletion] = [a for a in stock_alerts if a["kind"] == STOCK_DEPLETION]
    [out] = [a for a in stock_alerts if a["kind"] == STOCK_OUT]
    opened, ran_out = (a["opened_at"].replace(tzinfo=dt.UTC) for a in (depletion, out))
    assert ran_out == STEADY_OUT
    assert opened <= ran_out - dt.timedelta(minutes=s.stock_lead_time_minutes), (opened, ran_out)
    assert depletion["projected_stockout_at"].replace(tzinfo=dt.UTC) == STEADY_OUT
    assert out["depletion_alert"] == depletion["_id"]

    # one drop, of the product that turned; the clean products raise none
    [drop] = [a for a in alerts.values() if a["kind"] == SENTIMENT_DROP]
    assert drop["product_id"] == BAD and TURNS_BAD < drop["opened_at"].replace(tzinfo=dt.UTC) < closed

    # each alert queued once, with what it said when it opened
    def queued() -> dict[str, dict]:
        return {d["_id"]: d for d in store.find(NOTIFICATIONS)}

    entries = queued()
    assert sorted(entries) == sorted(f"{a}|ops" for a in alerts)
    for a in alerts.values():
        event = entries[f"{a['_id']}|ops"]["event"]
        assert event == ops_alert_event(a) and event["kind"] == a["kind"]
    run(s, "events")  # again, nothing new: nothing queued twice
    assert sorted(queued()) == sorted(entries)
