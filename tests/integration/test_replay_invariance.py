"""The same labelled file through the live pipeline, fast and paced, raises the backtest's alerts."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from include.core.backtest import run_backtest
from include.core.generator import GeneratorSpec, generate, write_csv
from include.core.rules import load_rules
from include.jobs import replay
from include.jobs.backtest import load_transactions
from tests.fixtures.pipeline import run_until_idle, start_in_thread, stored_ids

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_alert_ids_do_not_depend_on_replay_speed(settings_factory, tmp_path):
    data = tmp_path / "labelled.csv"
    write_csv(generate(GeneratorSpec(rows=2_500, users=250, fraud_rate=0.03, seed=99)), data)
    fast = settings_factory()
    txs, _ = load_transactions(data, ZoneInfo(fast.txnmon_timezone))
    expected = run_backtest(txs, load_rules(fast.rules_file)).alerts
    assert len(expected) > 30

    replay.replay_csv(fast, data, speedup=0)
    run_until_idle(fast)
    assert set(stored_ids(fast, "alerts")) == expected

    paced = settings_factory()
    processor, thread = start_in_thread(paced, idle_s=8)  # processing while the file trickles in
    summary = replay.replay_csv(paced, data, speedup=8_640)  # one day of event time in ~10 s
    assert summary.elapsed_s > 5
    thread.join(180)
    assert not thread.is_alive() and processor.batches > 3
    assert set(stored_ids(paced, "alerts")) == expected
