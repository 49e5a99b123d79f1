"""The rollup pipelines are data: check their shape without a server."""

from __future__ import annotations

import datetime as dt

from include.core import rollups
from include.core.quality import load_suites, resolve_suite


def test_every_rollup_merges_into_its_own_kpi_collection_with_stable_ids():
    names = [r.collection for r in rollups.ROLLUPS]
    assert len(set(names)) == len(names) and all(n.startswith("kpi_") for n in names)
    for rollup in rollups.ROLLUPS:
        stages = rollups.rollup_pipeline(rollup)
        merge = stages[-1]["$merge"]
        assert merge == {"into": rollup.collection, "on": "_id", "whenMatched": "replace",
                         "whenNotMatched": "insert"}
        project = stages[-2]["$project"]
        assert project["_id"]["$concat"][0] == "$_id.bucket"  # the bucket and keys as text: stable
        assert rollup.grain in project


def test_limited_pipeline_recomputes_whole_hours_only():
    stages = rollups.rollup_pipeline(rollups.ROLLUPS[0], ["2025-09-30T13", "2025-09-30T10"])
    rng = stages[0]["$match"]["event_time"]
    assert rng == {"$gte": dt.datetime(2025, 9, 30, 10, tzinfo=dt.UTC), "$lt": dt.datetime(2025, 9, 30, 14,
                                                                                           tzinfo=dt.UTC)}
    assert stages[2]["$match"]["_hour"]["$in"] == ["2025-09-30T10", "2025-09-30T13"]


def test_alert_rollup_leaves_out_shadow_alerts():
    alerts = next(r for r in rollups.ROLLUPS if r.source == "alerts")
    assert rollups.rollup_pipeline(alerts)[0]["$match"]["mode"] == {"$ne": "shadow"}


def test_revenue_counts_successful_purchases_only():
    revenue = rollups.TX_MEASURES["revenue"]["$sum"]["$cond"]
    conditions = revenue[0]["$and"]
    assert {"$ne": [{"$ifNull": ["$status", "success"]}, "failed"]} in conditions
    assert {"$ne": [{"$ifNull": ["$type", "purchase"]}, "refund"]} in conditions


def test_quality_suites_fill_in_run_time_bounds():
    now = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    suite = resolve_suite(load_suites()["transactions"], now)
    bounds = [s["kwargs"].get("max_value") for s in suite if s["kwargs"].get("column") == "event_time"]
    assert now + dt.timedelta(days=1) in bounds and now in bounds
    assert {s["severity"] for s in suite} == {"critical", "warning"}
