"""txnmon backtest: the processor's rules offline, measured on labelled data."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest

from tests.fixtures.browser import ARTIFACTS
from txnmon.cli import main
from txnmon.core.backtest import compare, run_backtest, to_json
from txnmon.core.rules import load_rules, parse_rules
from txnmon.jobs.backtest import load_transactions
from txnmon.settings import DEFAULT_RULES_FILE, SAMPLE_CSV
from txnmon.synthetic.generator import PATTERNS, GeneratorSpec, generate, write_csv

UTC = ZoneInfo("UTC")


def test_seed_sample_reports_the_single_high_amount_alert(capsys):
    assert main(["backtest", "--data", str(SAMPLE_CSV), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["transactions"] == 100
    assert doc["alerts_by_rule"]["high_amount"] == 1
    assert "velocity" not in doc["alerts_by_rule"]


def test_table_output_and_baseline_comparison(tmp_path, capsys):
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(DEFAULT_RULES_FILE.read_text().replace("threshold: 50000", "threshold: 10000"))
    assert main(["backtest", "--rules", str(candidate), "--baseline", str(DEFAULT_RULES_FILE), "--data",
                 str(SAMPLE_CSV)]) == 0
    out = capsys.readouterr().out
    assert "high_amount" in out and "alerts added" in out
    assert "new   " in out and "above the 10,000 limit" in out


def test_bad_rules_file_is_a_usage_error(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  velocity: {window: soon}\n")
    assert main(["backtest", "--rules", str(broken), "--data", str(SAMPLE_CSV)]) == 2
    assert "rules.velocity.window" in capsys.readouterr().err


def test_compare_lists_added_and_dropped_alert_ids():
    txs, _ = load_transactions(SAMPLE_CSV, UTC)
    base = run_backtest(txs, load_rules(DEFAULT_RULES_FILE))
    shipped = DEFAULT_RULES_FILE.read_text(encoding="utf-8")
    assert "threshold: 50000 " in shipped
    stricter = run_backtest(txs, parse_rules(shipped.replace("threshold: 50000 ", "threshold: 60000 ")))
    diff = compare(stricter, base)
    assert diff.dropped == ["3:high_amount"] and diff.added == []
    doc = to_json(stricter, diff, base)
    assert doc["dropped"]["examples"][0]["reason"].startswith("amount 56,000")


def test_shadow_rule_hits_are_counted_apart():
    txs, _ = load_transactions(SAMPLE_CSV, UTC)
    shadow = parse_rules("rules:\n  high_amount: {threshold: 10000, mode: shadow}\n")
    result = run_backtest(txs, shadow)
    assert "high_amount" not in result.alerts_by_rule
    assert result.shadow_by_rule["high_amount"] > 1


@pytest.mark.slow
def test_detection_quality_of_the_shipped_rules_on_a_labelled_day(tmp_path):
    """The figures quoted in the README: >= 95% of injected incidents caught, <= 1% false alerts."""
    data = tmp_path / "labelled_day.csv"
    write_csv(generate(GeneratorSpec(rows=100_000, users=10_000, fraud_rate=0.01, seed=2026)), data)
    txs, rejected = load_transactions(data, UTC)
    result = run_backtest(txs, load_rules(DEFAULT_RULES_FILE), rejected)
    report = to_json(result)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "detection_quality.json").write_text(json.dumps(report, indent=2))
    assert rejected == 0
    assert set(result.recall_by_pattern) == set(PATTERNS)
    for pattern, r in result.recall_by_pattern.items():
        assert r["recall"] >= 0.95, (pattern, r)
    assert result.false_alert_rate is not None and result.false_alert_rate <= 0.01


def test_replay_job_needs_both_window_ends():
    from txnmon.errors import InvalidInputFile
    from txnmon.jobs import replay
    from txnmon.settings import load_settings

    with pytest.raises(InvalidInputFile, match="go together"):
        replay.run_replay(load_settings(), {"file": "x.csv", "speedup": 0, "limit": None,
                                            "window_from": "2025-10-01T00:00:00"})


def test_a_backtest_over_stored_history_reads_every_field_the_rules_read():
    """The backtest DAG once left payment_method out of its projection: account_takeover could not fire."""
    import typing

    from txnmon.core import backtest
    from txnmon.core.rules.rulebook import ListCheck
    from txnmon.core.rules.state import Event

    fields = set(backtest.STORED_FIELDS)
    assert set(Event._fields) <= fields
    assert set(typing.get_args(ListCheck.model_fields["field"].annotation)) <= fields


def test_workers_give_the_report_one_process_gives(tmp_path, capsys, monkeypatch):
    """`--workers 2` judges shares of the users in two spawned processes (src/txnmon/jobs/backtest_workers.py)."""
    from txnmon.jobs import backtest_workers

    day = tmp_path / "day.csv"
    write_csv(generate(GeneratorSpec(rows=3_000, users=300, fraud_rate=0.03, seed=4)), day)
    monkeypatch.setattr(backtest_workers, "MIN_ROWS_PER_WORKER", 1_000)
    reports = []
    for workers in ("1", "2"):
        assert main(["backtest", "--data", str(day), "--json", "--workers", workers]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0] == reports[1] and reports[0]["alerts"] > 10 and "quality" in reports[0]


def test_workers_must_be_a_positive_count(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["backtest", "--data", str(SAMPLE_CSV), "--workers", "0"])
    assert exited.value.code == 2 and "--workers" in capsys.readouterr().err
