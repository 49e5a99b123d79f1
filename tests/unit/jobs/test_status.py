"""`txnmon status` text: the KPI freshness lines (no server: the report is a dict)."""

from __future__ import annotations

import datetime as dt
import json

from txnmon.jobs import status

AT = dt.datetime(2025, 10, 1, 12, 0, 5, tzinfo=dt.UTC)


def _report(kpis: dict) -> dict:
    return {"healthy": True, "kafka": {"error": "not asked"},
            "mongo": {"version": "4.4.0", "maxWireVersion": 9, "database": "db", "counts": {"transactions": 3},
                      "stored_last_minute": 0, "throughput_tx_per_s": 0.0},
            "kpis": kpis}


def test_status_says_how_fresh_each_kpi_collection_is():
    run = {"_id": "run-1", "as_of": AT, "finished_at": AT + dt.timedelta(seconds=2), "mark": AT, "hours_recomputed": 4,
           "entries_consumed": 9}
    report = _report({"last_run": run, "pending_batches": 2, "collections": {
        "kpi_revenue_minute": {"last_success": AT + dt.timedelta(seconds=2), "as_of": AT, "mark": AT,
                               "run_id": "run-1"},
        "kpi_rule_quality": None}})
    text = status.render(report)
    assert "kpis    as of 2025-10-01 12:00:05 UTC" in text and "2 stored batch(es) waiting" in text
    assert "4 hour(s), 9 batch(es)" in text
    assert "kpi_revenue_minute           last success 2025-10-01 12:00:07 UTC" in text
    assert "kpi_rule_quality             last success never" in text
    assert json.loads(json.dumps(report, default=str))["kpis"]["last_run"]["as_of"] == "2025-10-01 12:00:05+00:00"


def test_status_before_any_rollup_run_and_when_unknown():
    text = status.render(_report({"last_run": None, "pending_batches": 5, "collections": {}}))
    assert "no successful rollup run yet; 5 stored batch(es) waiting" in text
    assert "kpis    unknown  timed out" in status.render(_report({"error": "timed out"}))


def test_status_text_leads_with_the_verdict_and_each_problem():
    report = _report({"last_run": None, "pending_batches": 0, "collections": {}})
    report["healthy"] = False
    report["verdict"] = {"state": "unhealthy", "healthy": False, "problems": [
        {"severity": "critical", "check": "consumers", "message": "no processor is a member of group g while 7 wait"}]}
    lines = status.render(report).splitlines()
    assert lines[0] == "txnmon status: UNHEALTHY"
    assert lines[1] == "  CRITICAL consumers: no processor is a member of group g while 7 wait"
