"""The pipeline checks against the real stack: the raw topic reconciled with what was stored, the
KPIs with the transactions, in the same quality reports as the column suites."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.fixtures.pipeline import run_until_idle
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import QUALITY_REPORTS
from txnmon.errors import QualityCheckFailed
from txnmon.jobs import replay, rollups
from txnmon.jobs.quality import run_quality_checks
from txnmon.settings import SAMPLE_CSV

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _pipeline(summaries: list[dict]) -> dict:
    return next(s for s in summaries if s["suite"] == "pipeline")


def test_a_clean_run_reconciles_every_message_and_every_kpi_hour(isolated_settings, tmp_path):
    s = isolated_settings
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    replay.replay_csv(s, SAMPLE_CSV)
    replay.replay_csv(s, SAMPLE_CSV)  # the same file twice: identical copies, stored once
    run_until_idle(s)
    store = MongoStore(s)
    rollups.run_rollups(store, full_rebuild=True)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    summaries = run_quality_checks(store, start, end, tmp_path, settings=s)
    p = _pipeline(summaries)
    m = p["metrics"]
    assert (m["raw_messages"], m["unaccounted_messages"], m["duplicate_messages"]) == (200, 0, 100)
    assert m["volume"] == 100 and m["rejected"] == 0 and m["dlq_rate"] == 0
    assert m["rollup_hours_checked"] >= 1 and m["rollup_mismatched_hours"] == 0
    assert m["newest_processed_age_s"] < 120 and m["volume_baseline"] is None  # no earlier days: not judged
    parts = p["details"]["reconciliation"]["partitions"]
    assert len(parts) == 3 and sum(x["stored"] for x in parts) == 100
    # the seed's events are from 2025: freshness of event time is a warning, not a failure
    assert [(f["column"], f["severity"]) for f in p["failed_expectations"]] == [("newest_event_age_s", "warning")]
    assert p["report_path"].endswith(".html")
    assert {d["suite"] for d in store.find(QUALITY_REPORTS)} == {"transactions", "alerts", "pipeline"}


def test_a_lost_transaction_and_a_wrong_kpi_fail_the_run_as_critical(isolated_settings, tmp_path):
    s = isolated_settings
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    replay.replay_csv(s, SAMPLE_CSV)
    run_until_idle(s)
    store = MongoStore(s)
    rollups.run_rollups(store, full_rebuild=True)
    store.collection("transactions").delete_one({"_id": "7"})  # stored, then lost
    kpi = store.find("kpi_revenue_minute", limit=1)[0]
    store.collection("kpi_revenue_minute").update_one({"_id": kpi["_id"]}, {"$inc": {"revenue": 1000.0}})
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    with pytest.raises(QualityCheckFailed) as failed:
        run_quality_checks(store, start, end, tmp_path, settings=s)
    assert "pipeline: expect_column_values_to_be_between(unaccounted_messages) unexpected=1" in str(failed.value)
    assert "pipeline: expect_column_values_to_be_between(rollup_mismatched_hours) unexpected=1" in str(failed.value)
    [report] = store.find(QUALITY_REPORTS, {"suite": "pipeline"})
    assert report["metrics"]["unaccounted_messages"] == 1 and report["metrics"]["rollup_mismatched_hours"] >= 1
    [lost] = [x for x in report["details"]["reconciliation"]["partitions"] if x["unaccounted"]]
    assert len(lost["unaccounted_offsets"]) == 1
    mismatched = report["details"]["rollup_consistency"]["mismatched"]
    assert any(h["kpi_transactions"] == h["stored_transactions"] + 1 for h in mismatched)  # the lost one's hour
    assert any(h["kpi_revenue"] - h["stored_revenue"] >= 1000 - 0.01 for h in mismatched)  # the altered minute's
