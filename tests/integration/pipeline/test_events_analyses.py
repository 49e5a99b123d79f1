"""Issue #31: `txnmon events` runs the stock and sentiment analyses over closed event time. A small
generated day (transactions, stock events, reviews, plus a few reviews within the day) replayed to
Kafka, `txnmon stream` then `txnmon events` run until idle: the analyses' outputs exist and are the
documents `run_stock` / `run_sentiment` write when called once, directly, over the same stored data up
to the same closed event time (the service walked in many steps, as its batches came)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest

from tests.fixtures.pipeline import ROOT, TXNMON, env_for
from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import (
    KPI_STOCK_HOUR,
    OPS_ALERTS,
    REVIEW_SCORES,
    REVIEWS,
    SENTIMENT_HOUR,
    STOCK_EVENTS,
    STOCK_LEVELS,
    TRANSACTIONS,
)
from txnmon.jobs import replay
from txnmon.jobs.sentiment import run_sentiment
from txnmon.jobs.stock import run_stock
from txnmon.pipeline.event_sinks import closed_event_time
from txnmon.services.events_wiring import StoredEventTime
from txnmon.synthetic.events import generate_events, write_events
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

pytestmark = pytest.mark.integration
OUTPUTS = (STOCK_LEVELS, KPI_STOCK_HOUR, OPS_ALERTS, REVIEW_SCORES, SENTIMENT_HOUR)


def run(settings, command: str) -> None:
    done = subprocess.run([TXNMON, command, "--exit-when-idle", "3"], env=env_for(settings), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def outputs(store: MongoStore) -> dict[str, dict]:
    """Every output document, without its wall-clock `updated_at`."""
    return {name: {d["_id"]: {k: v for k, v in d.items() if k != "updated_at"} for d in store.find(name)}
            for name in OUTPUTS}


def test_the_service_runs_the_analyses_and_they_match_a_direct_run(settings_factory, tmp_path):
    s = settings_factory(create_topics=False, batch_max_records=100, events_lateness_seconds=60)
    kafka.ensure_topics(s, s.init_topics)
    spec = GeneratorSpec(rows=600, users=60, seed=11)
    txs = generate(spec)
    frames = generate_events(txs, spec, ["stock", "reviews"])
    write_csv(txs, tmp_path / "tx.csv")
    replay.replay_csv(s, tmp_path / "tx.csv")
    for kind, path in write_events(frames, tmp_path).items():
        replay.replay_csv(s, path, kind=kind)
    # the generated reviews come days after their purchase, past the processor's mark: some within the day
    products = sorted(set(txs["product"]))[:2]
    day_reviews = [{"review_id": f"R-day-{i}", "user_id": f"U{i}", "product_id": products[i % 2], "rating": 1 + i % 5,
                    "text": ["awful, broke at once", "bad", "ok", "good", "great, love it"][i % 5],
                    "timestamp": f"{spec.start}T{1 + i // 3:02d}:{(7 * i) % 60:02d}:00Z"} for i in range(24)]
    producer = kafka.make_producer(s)
    kafka.send_all(producer, s.topic_reviews, [(r["product_id"].encode(), json.dumps(r).encode()) for r in day_reviews])
    producer.flush()

    run(s, "stream")
    run(s, "events")
    store = MongoStore(s)
    served = outputs(store)
    assert served[STOCK_LEVELS] and served[KPI_STOCK_HOUR] and served[REVIEW_SCORES] and served[SENTIMENT_HOUR]
    # what the service's last call used: every partition drained (its exit counts them quiet)
    closed = closed_event_time(StoredEventTime(s, store), s, now=dt.datetime.now(dt.UTC), quiet_after_s=0)
    assert closed is not None and closed.date() == spec.start

    direct = settings_factory(create_topics=False)
    other = MongoStore(direct)
    other.ensure_indexes()
    for name in (TRANSACTIONS, STOCK_EVENTS, REVIEWS):
        other.insert_missing(name, store.find(name))
    run_stock(other, direct, closed_until=closed, trigger="test")
    run_sentiment(other, direct, closed_until=closed, trigger="test")
    assert outputs(other) == served
