"""Each DAG through `airflow dags test` (the real Airflow CLI) against the real local stack."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.fixtures.pipeline import run_until_idle
from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import ALERTS, KPI_RUNS, TOUCHED_HOURS
from txnmon.jobs import rollups
from txnmon.jobs.replay import replay_csv
from txnmon.settings import SAMPLE_CSV
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _log(result) -> str:
    return result.stdout + result.stderr


def _runs_covering(settings, period: dt.timedelta) -> list[dt.datetime]:
    """Logical dates of the manual runs whose data intervals cover every stored processed_time.

    A manual run at L covers the last complete interval before L: [floor(L) - period, floor(L)).
    """
    db = MongoStore(settings)
    times = [d["processed_time"] for d in db.find("transactions", projection={"processed_time": 1})]
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    floors = {epoch + ((t - epoch) // period) * period for t in times}
    return sorted(f + period + dt.timedelta(seconds=1) for f in floors)


def test_replay_dag_puts_every_row_of_a_generated_file_on_the_topic(isolated_settings, run_dag, tmp_path):
    s = isolated_settings
    data = tmp_path / "day.csv"
    write_csv(generate(GeneratorSpec(rows=3000, users=300, seed=4)), data)
    result = run_dag("replay_transactions", s, json.dumps({"file": str(data), "speedup": 0}))
    assert result.returncode == 0, _log(result)[-3000:]
    assert sum(kafka.end_offsets(s, s.topic_raw).values()) == 3000
    assert "replayed 3,000 rows" in _log(result)


def test_replay_dag_refuses_a_bad_file_and_names_the_failures(isolated_settings, run_dag, tmp_path):
    s = isolated_settings
    bad = tmp_path / "bad.csv"
    lines = SAMPLE_CSV.read_text().splitlines()
    lines[2] = "2,U002,-1200,UPI,Delhi,30-09-2025 10:06"
    lines[3] = "3,U001,56000,Debit Card,Mumbai,not a time"
    bad.write_text("\n".join(lines) + "\n")
    result = run_dag("replay_transactions", s, json.dumps({"file": str(bad), "speedup": 0}))
    assert result.returncode != 0
    log = _log(result)
    assert "failed validation, nothing sent" in log
    assert "expect_column_values_to_be_between(amount_number): 1 unexpected" in log
    assert "expect_column_values_to_not_be_null(event_time): 1 unexpected" in log
    assert sum(kafka.end_offsets(s, s.topic_raw).values()) == 0


def test_one_manual_kpi_rollups_trigger_after_processing_adds_up_to_the_seed_total(isolated_settings, run_dag):
    s = isolated_settings
    replay_csv(s, SAMPLE_CSV)
    run_until_idle(s)
    db = MongoStore(s)
    result = run_dag("kpi_rollups", s)  # one manual trigger, right after processing: its data interval is irrelevant
    assert result.returncode == 0, _log(result)[-3000:]
    snapshot = {name: sorted(db.find(name), key=lambda d: d["_id"]) for name in rollups.ROLLUP_NAMES}
    for name in rollups.ROLLUP_NAMES:
        if name not in ("kpi_alerts_hour", "kpi_signals_5min"):  # alerts and signal buckets carry no revenue
            assert sum(d["revenue"] for d in snapshot[name]) == 777_650, name
    assert sum(d["transactions"] for d in snapshot["kpi_signals_5min"]) == 100
    state = db.find_one("signal_state", {"_id": "business_signals"})  # the DAG's second task ran after the rollup
    assert state is not None and state["closed_until"] is not None, _log(result)[-3000:]
    assert sum(d["transactions"] for d in snapshot["kpi_revenue_minute"]) == 100
    assert {d["_id"] for d in snapshot["kpi_alerts_hour"]} >= {"2025-09-30T10|high_amount|high"}
    [run] = db.find(KPI_RUNS)
    assert run["success"] and run["trigger"] == "airflow" and run["passes"]["transactions"] == 1
    assert db.count(TOUCHED_HOURS, {"pending": True}) == 0
    again = run_dag("kpi_rollups", s, conf='{"full_rebuild": true}')
    assert again.returncode == 0, _log(again)[-3000:]
    assert {name: sorted(db.find(name), key=lambda d: d["_id"]) for name in rollups.ROLLUP_NAMES} == snapshot


def test_kpi_rollups_after_a_scheduler_pause_catch_up_whatever_interval_runs_next(isolated_settings, run_dag):
    s = isolated_settings
    replay_csv(s, SAMPLE_CSV)
    run_until_idle(s)
    db = MongoStore(s)
    # the scheduler was down: the next run is for an interval long before anything was processed
    stale = dt.datetime(2025, 1, 1, 0, 5, 1, tzinfo=dt.UTC)
    result = run_dag("kpi_rollups", s, logical_date=stale)
    assert result.returncode == 0, _log(result)[-3000:]
    assert sum(d["revenue"] for d in db.find("kpi_location_hour")) == 777_650
    rerun = run_dag("kpi_rollups", s, logical_date=stale)  # the same run again: nothing pending, nothing changes
    assert rerun.returncode == 0, _log(rerun)[-3000:]
    assert sum(d["revenue"] for d in db.find("kpi_location_hour")) == 777_650
    assert [r["entries_consumed"] > 0 for r in db.find(KPI_RUNS, sort=[("started_at", 1)])] == [True, False]


def test_data_quality_passes_clean_data_and_fails_naming_injected_defects(isolated_settings, run_dag):
    s = isolated_settings
    replay_csv(s, SAMPLE_CSV)
    run_until_idle(s)
    runs = _runs_covering(s, dt.timedelta(hours=1))
    for logical_date in runs:
        clean = run_dag("data_quality", s, logical_date=logical_date)
        assert clean.returncode == 0, _log(clean)[-3000:]
    db = MongoStore(s)
    reports = db.find("quality_reports")
    assert {r["suite"] for r in reports} == {"transactions", "alerts", "pipeline"}
    assert sum(r["rows"] for r in reports if r["suite"] == "transactions") == 100
    columns = [r for r in reports if r["suite"] != "pipeline"]
    assert all(r["success"] for r in columns) and sum(r["rows"] for r in columns) >= 100
    pipeline = [r for r in reports if r["suite"] == "pipeline"]
    assert not any(r["critical_failed"] for r in pipeline)  # the seed's 2025 event times: a freshness warning
    assert sum(r["metrics"]["raw_messages"] for r in pipeline) == 100  # every message reconciled
    assert sum(r["metrics"]["unaccounted_messages"] for r in pipeline) == 0
    assert all(r["report_path"] and r["report_path"].endswith(".html") for r in reports)

    base = db.find_one("transactions", {"_id": "5"})
    defects = [
        {**base, "_id": "bad-1", "transaction_id": "bad-1", "amount": -10.0},
        {**base, "_id": "bad-2", "transaction_id": "bad-2", "value_category": "Enormous"},
        {**base, "_id": "bad-3", "transaction_id": "5"},  # a second document for transaction 5
    ]
    db.insert_missing("transactions", defects)
    db.insert_missing(ALERTS, [{"_id": "ghost:high_amount", "alert_id": "ghost:high_amount", "transaction_id": "ghost",
                                 "rule": "high_amount", "severity": "high", "event_time": base["event_time"],
                                 "created_at": base["processed_time"]}])
    covering_t5 = next(r for r in runs if r - dt.timedelta(hours=1, seconds=1) <= base["processed_time"] < r)
    dirty = run_dag("data_quality", s, logical_date=covering_t5)
    assert dirty.returncode != 0
    log = _log(dirty)
    assert "critical expectations failed" in log
    for needle in ("expect_column_values_to_be_between(amount)", "expect_column_values_to_be_in_set(value_category)",
                   "expect_column_values_to_be_unique(transaction_id)",
                   "expect_column_values_to_be_in_set(transaction_found)"):
        assert needle in log, needle
    failed = {r["suite"]: r for r in db.find("quality_reports") if not r["success"]}
    assert {f["column"] for f in failed["transactions"]["failed_expectations"]} >= {"amount", "value_category",
                                                                                     "transaction_id"}


def test_backtest_dag_compares_a_candidate_with_the_rules_in_use(isolated_settings, run_dag, tmp_path):
    s = isolated_settings
    replay_csv(s, SAMPLE_CSV)
    run_until_idle(s)
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(s.rules_file.read_text().replace("threshold: 50000", "threshold: 10000"))
    result = run_dag("backtest_rules", s, json.dumps({"candidate_rules": str(candidate), "hours": 48}))
    assert result.returncode == 0, _log(result)[-3000:]
    reports = sorted((tmp_path / "reports" / "backtests").glob("backtest_*.json"))
    assert len(reports) == 1
    doc = json.loads(reports[0].read_text())
    assert doc["transactions"] == 100
    assert doc["baseline"]["alerts_by_rule"]["high_amount"] == 1
    assert doc["alerts_by_rule"]["high_amount"] == doc["added"]["count"] + 1
    assert "alerts added" in _log(result)


def test_replay_dag_refuses_a_file_outside_the_data_folder(isolated_settings, run_dag):
    result = run_dag("replay_transactions", isolated_settings, json.dumps({"file": "/etc/hostname", "speedup": 0}))
    assert result.returncode != 0
    assert "only files under" in _log(result) and "DATA_DIR" in _log(result)
