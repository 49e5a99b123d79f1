"""Long commands tell their progress on stderr; into a pipe (a log, cron) as plain lines."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.fixtures.pipeline import ROOT, TXNMON, env_for, run_until_idle
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def txnmon(settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TXNMON, *args], env=env_for(settings), cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_replay_rollups_and_backtest_report_progress_as_plain_lines(isolated_settings, tmp_path):
    s = isolated_settings
    day = tmp_path / "day.csv"
    write_csv(generate(GeneratorSpec(rows=12_000, users=800, seed=11)), day)

    replay = txnmon(s, "replay", str(day))
    assert replay.returncode == 0, replay.stderr
    assert "replayed 12,000 rows" in replay.stdout  # the summary stays on stdout
    assert "replay: checking 12,000/12,000 rows (100%) in" in replay.stderr
    assert "replay: sending 12,000/12,000 rows (100%) in" in replay.stderr and " rows/s" in replay.stderr

    run_until_idle(s)
    rollups = txnmon(s, "rollups", "--full")
    assert rollups.returncode == 0, rollups.stderr
    assert "rollups: reading transactions 12,000/12,000 documents (100%)" in rollups.stderr

    backtest = txnmon(s, "backtest", "--data", str(day), "--baseline", "src/txnmon/data/rules/rules.yaml", "--json")
    assert backtest.returncode == 0, backtest.stderr
    assert json.loads(backtest.stdout)["transactions"] == 12_000  # --json output is untouched by progress
    for stage in ("rules", "baseline"):
        assert f"backtest: {stage} 12,000/12,000 transactions (100%) in" in backtest.stderr
