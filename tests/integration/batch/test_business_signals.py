"""Business signals through the real pipeline: generated data with a gateway outage, a product spike and
a new region, replayed fast and paced (rollups and signals running while it streams in), raises each
signal once, in event time, and clears it; clean data raises none."""

from __future__ import annotations

import datetime as dt
import subprocess
import threading
from pathlib import Path

import pytest

from tests.fixtures.pipeline import TXNMON, env_for, run_until_idle, start_in_thread
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import OPS_ALERTS, TRENDS
from txnmon.errors import RetryableError
from txnmon.jobs import business_signals, replay, rollups
from txnmon.synthetic.business_events import inject, parse_event
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAY = dt.date(2025, 10, 1)
ROWS, USERS = 30_000, 3_000


def _at(hh: int, mm: int = 0) -> dt.datetime:
    return dt.datetime(DAY.year, DAY.month, DAY.day, hh, mm, tzinfo=dt.UTC)


def generated(tmp_path: Path, *, with_events: bool, seed: int = 7) -> Path:
    df = generate(GeneratorSpec(rows=ROWS, users=USERS, seed=seed, start=DAY))
    if with_events:
        df = inject(df, [parse_event("gateway_outage", "UPI@12:00/30", DAY),
                         parse_event("product_spike", "Air Fryer@14:00/60", DAY),
                         parse_event("new_region", "Bhopal@17:00/60", DAY)], seed)
    path = tmp_path / ("events.csv" if with_events else "clean.csv")
    write_csv(df, path)
    return path


def roll_and_decide(settings) -> business_signals.SignalRun:
    store = MongoStore(settings)
    rollups.run_rollups(store)
    return business_signals.run_signals(store, settings)


def episodes(settings) -> dict[str, dict]:
    store = MongoStore(settings)
    found = store.find(OPS_ALERTS) + store.find(TRENDS)
    return {e["_id"]: {k: v for k, v in e.items() if k != "_id"} for e in found}


def check_the_three_signals(found: dict[str, dict]) -> None:
    by_kind = {e["kind"]: e for e in found.values()}
    assert len(found) == 3 and sorted(by_kind) == ["new_region", "payment_failure_spike", "trending_product"], \
        sorted(found)
    outage = by_kind["payment_failure_spike"]
    assert outage["payment_method"] == "UPI" and outage["status"] == "cleared"
    assert outage["opened_at"] == _at(12) and outage["cleared_at"] == _at(12, 30)  # event time, to the bucket
    spike = by_kind["trending_product"]
    assert spike["product"] == "Air Fryer" and spike["status"] == "cleared"
    assert _at(14) <= spike["opened_at"] < _at(14, 15) and _at(15) <= spike["cleared_at"] <= _at(15, 20)
    region = by_kind["new_region"]
    assert region["location"] == "Bhopal" and region["status"] == "cleared"
    assert _at(17) <= region["opened_at"] < _at(17, 15) and _at(18) <= region["cleared_at"] <= _at(18, 20)


def test_each_business_event_raises_one_signal_that_clears_at_any_replay_speed(settings_factory, tmp_path):
    data = generated(tmp_path, with_events=True)

    fast = settings_factory()
    replay.replay_csv(fast, data, speedup=0)
    run_until_idle(fast)
    roll_and_decide(fast)
    expected = episodes(fast)
    check_the_three_signals(expected)
    # ops alerts are kept apart from the fraud alerts
    assert not any(a["rule"] == "payment_failure_spike" for a in MongoStore(fast).find("alerts"))
    # another run decides nothing new and rewrites nothing
    again = roll_and_decide(fast)
    assert again.evaluated == 0 and again.opened == [] and episodes(fast) == expected

    paced = settings_factory()
    processor, thread = start_in_thread(paced, idle_s=8)
    stop, runs = threading.Event(), []

    def scheduler() -> None:  # the kpi_rollups DAG, every couple of seconds while the file streams in
        while not stop.is_set():
            try:
                runs.append(roll_and_decide(paced))
            except RetryableError:
                pass
            stop.wait(1.5)

    ticking = threading.Thread(target=scheduler, daemon=True)
    ticking.start()
    summary = replay.replay_csv(paced, data, speedup=8_640)  # one day of event time in ~10 s
    thread.join(180)
    stop.set()
    ticking.join(60)
    assert summary.elapsed_s > 5 and not thread.is_alive() and processor.batches > 3
    roll_and_decide(paced)
    assert sum(r.evaluated > 0 for r in runs) >= 2, "signals were decided in several runs while data arrived"
    assert episodes(paced) == expected


    cli = subprocess.run([TXNMON, "signals"], env=env_for(fast), capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    # the CLI reports the run's mark: every bucket before it decided (the generated day's travellers and
    # late arrivals run into the next morning, so the mark is wherever the data's watermark put it)
    assert again.closed_until is not None and again.closed_until > _at(18, 20)
    assert f"business signals decided up to {again.closed_until:%Y-%m-%d %H:%M} UTC" in cli.stdout
    assert "0 signal(s) open" in cli.stdout
    bad = subprocess.run([TXNMON, "signals"], env=env_for(fast, TREND_FACTOR="0.5"), capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "TREND_FACTOR" in bad.stderr


def test_clean_generated_data_raises_no_signal(settings_factory, tmp_path):
    s = settings_factory()
    replay.replay_csv(s, generated(tmp_path, with_events=False), speedup=0)
    run_until_idle(s)
    run = roll_and_decide(s)
    assert run.closed_until is not None and run.closed_until >= _at(23), run.closed_until
    assert run.evaluated > 250  # nearly the whole day was decided
    assert episodes(s) == {}
