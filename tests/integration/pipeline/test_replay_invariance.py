"""The same labelled file through the live pipeline, fast and paced, raises the backtest's alerts.

The file is the realistic day of the detection-quality test (tests/unit/core/test_detection_quality.py):
travellers, multi-item checkouts, declined retries, late arrivals, six fraud patterns, weighed by
the shipped typologies, so the report measured offline is the one the live pipeline would give."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from tests.fixtures.datasets import REALISTIC_DAY
from tests.fixtures.pipeline import run_until_idle, start_in_thread, stored_ids
from txnmon.core.backtest import run_backtest
from txnmon.core.rules import load_rules
from txnmon.jobs import replay
from txnmon.jobs.backtest import load_transactions
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_alert_ids_do_not_depend_on_replay_speed(settings_factory, tmp_path):
    data = tmp_path / "labelled.csv"
    write_csv(generate(GeneratorSpec(seed=17, **REALISTIC_DAY)), data)
    fast = settings_factory()
    txs, _ = load_transactions(data, ZoneInfo(fast.txnmon_timezone))
    offline = run_backtest(txs, load_rules(fast.rules_file))
    expected = offline.alerts
    assert len(expected) > 100
    # the typologies are what raise them (and the report meets its targets: the unit test checks that)
    assert {a.split(":", 1)[1] for a in expected} >= {"card_testing", "account_takeover", "impossible_travel",
                                                        "refund_abuse", "velocity", "high_amount"}

    replay.replay_csv(fast, data, speedup=0)
    run_until_idle(fast)
    assert set(stored_ids(fast, "alerts")) == expected

    paced = settings_factory()
    processor, thread = start_in_thread(paced, idle_s=8)  # processing while the file trickles in
    summary = replay.replay_csv(paced, data, speedup=8_640)  # one day of event time in ~10 s (28 h here)
    assert summary.elapsed_s > 5
    thread.join(180)
    assert not thread.is_alive() and processor.batches > 3
    assert set(stored_ids(paced, "alerts")) == expected
