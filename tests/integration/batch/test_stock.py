"""The stock job on MongoDB (src/txnmon/jobs/stock.py): a generated day's stock events and purchases,
stored as the processor and `txnmon events` store them, walked in event time. A pair that sells steadily
and runs out is alerted once, at least the lead time before its stock-out; a re-walk after a crash
before the state was saved, or a walk in other steps, writes the same documents; plentiful stock
raises nothing."""

from __future__ import annotations

import datetime as dt
import functools

import pytest

from tests.fixtures.stock_day import START, STEADY, STEADY_OUT, day
from txnmon.adapters.mongo import MongoStore
from txnmon.core.business_signals import TRENDING_PRODUCT
from txnmon.core.collection_names import (
    KPI_STOCK_HOUR,
    OPS_ALERTS,
    STOCK_EVENTS,
    STOCK_LEVELS,
    STOCK_STATE,
    TRANSACTIONS,
    TRENDS,
)
from txnmon.core.stock import STOCK_DEPLETION, STOCK_OUT, key_id
from txnmon.jobs.stock import run_stock

pytestmark = [pytest.mark.integration]

END = START + dt.timedelta(days=2)
ROWS, USERS = 2000, 300


@functools.cache
def _day(plentiful: bool) -> tuple[list, list]:
    return day(ROWS, USERS, plentiful=plentiful)


def loaded(settings_factory, *, plentiful: bool = False) -> tuple[MongoStore, object]:
    settings = settings_factory(create_topics=False)
    store = MongoStore(settings)
    store.ensure_indexes()
    txs, events = _day(plentiful)
    store.insert_missing(TRANSACTIONS, txs)
    store.insert_missing(STOCK_EVENTS, events)
    return store, settings


def outputs(store: MongoStore) -> dict[str, dict]:
    return {name: {d["_id"]: d for d in store.find(name)} for name in (OPS_ALERTS, KPI_STOCK_HOUR, STOCK_LEVELS)}


def test_a_steady_pair_is_alerted_the_lead_time_before_it_runs_out_once_and_rewalks_agree(settings_factory):
    store, settings = loaded(settings_factory)
    trend = {"_id": "trending_product|Steady Kettle|2025-10-01T07:00", "kind": TRENDING_PRODUCT,
             "product": STEADY[0], "status": "open", "opened_at": START + dt.timedelta(hours=7)}
    store.write_documents(TRENDS, [trend])
    first = run_stock(store, settings, closed_until=START + dt.timedelta(hours=12, minutes=7))
    saved = store.find_one(STOCK_STATE, {"_id": "stock"})
    last = run_stock(store, settings, closed_until=END)
    assert first.walked and last.walked and last.hours
    done = outputs(store)

    key = key_id(*STEADY)
    alerts = [a for a in done[OPS_ALERTS].values() if a["key"] == key]
    depletion = [a for a in alerts if a["kind"] == STOCK_DEPLETION]
    out = [a for a in alerts if a["kind"] == STOCK_OUT]
    assert len(depletion) == 1 and len(out) == 1, alerts
    lead = dt.timedelta(minutes=settings.stock_lead_time_minutes)
    opened = depletion[0]["opened_at"].replace(tzinfo=dt.UTC)
    assert out[0]["opened_at"].replace(tzinfo=dt.UTC) == STEADY_OUT
    assert opened <= STEADY_OUT - lead, (opened, STEADY_OUT)
    assert depletion[0]["level"] > 0 and depletion[0]["rate_per_hour"] == 10.0
    assert depletion[0]["projected_stockout_at"].replace(tzinfo=dt.UTC) == STEADY_OUT
    level = done[STOCK_LEVELS][key]
    assert level["level"] == -20 and level["trending"] == trend["_id"]  # 20 sold past the stock-out
    assert level["depletion_alert"] == depletion[0]["_id"]
    # the generator's pairs: some run out, and each stock-out is in ops_alerts once
    outs = [a for a in done[OPS_ALERTS].values() if a["kind"] == STOCK_OUT and a["key"] != key]
    assert outs and len({a["_id"] for a in outs}) == len(outs)

    # a crash after the writes, before the state was saved: the re-walk writes the same documents
    store.replace_document(STOCK_STATE, saved)
    run_stock(store, settings, closed_until=END)
    assert outputs(store) == done

    # the same data walked in other steps
    other, other_settings = loaded(settings_factory)
    # 07:00:00.0005 is just after a steady sale: MongoDB keeps milliseconds; the sale is walked once
    steps = [dt.timedelta(minutes=95), dt.timedelta(hours=7, microseconds=500),
             *(dt.timedelta(minutes=m) for m in (431, 432, 1000, 1441, 2000))]
    for step in steps:
        run_stock(other, other_settings, closed_until=START + step)
    run_stock(other, other_settings, closed_until=END)
    again = outputs(other)
    assert again[OPS_ALERTS] == done[OPS_ALERTS] and again[KPI_STOCK_HOUR] == done[KPI_STOCK_HOUR]
    strip = {k: {f: v for f, v in d.items() if f != "trending"} for k, d in done[STOCK_LEVELS].items()}
    assert {k: {f: v for f, v in d.items() if f != "trending"} for k, d in again[STOCK_LEVELS].items()} == strip


def test_plentiful_stock_raises_nothing(settings_factory):
    store, settings = loaded(settings_factory, plentiful=True)
    run = run_stock(store, settings, closed_until=END)
    assert run.walked > 1000 and run.levels > 10
    assert store.find(OPS_ALERTS) == []
    assert store.count(KPI_STOCK_HOUR) == run.hours > 0
