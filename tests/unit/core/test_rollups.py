"""The rollup catalog, its keys, queries and write plans: pure, no server."""

from __future__ import annotations

import datetime as dt

import pytest

from txnmon.core import rollups
from txnmon.core.quality import load_suites, resolve_suite

UTC = dt.UTC
T0 = dt.datetime(2025, 9, 30, 10, 0, tzinfo=UTC)
BY_NAME = {r.collection: r for r in rollups.ROLLUPS}


# --- keys --------------------------------------------------------------------------------------


def test_plain_keys_keep_the_ids_they_always_had():
    assert rollups.rollup_id(BY_NAME["kpi_location_hour"], (T0, "Mumbai")) == "2025-09-30T10|Mumbai"
    assert rollups.rollup_id(BY_NAME["kpi_revenue_minute"], (T0 + dt.timedelta(minutes=5),)) == "2025-09-30T10:05"
    with pytest.raises(ValueError, match="expected a bucket and 1 key"):
        rollups.rollup_id(BY_NAME["kpi_location_hour"], (T0,))


# --- what a run reads --------------------------------------------------------------------------


def test_an_incremental_read_covers_exactly_the_touched_hours():
    assert rollups.time_query("event_time", None) == {}
    assert rollups.time_query("event_time", ["2025-09-30T10"]) == {
        "event_time": {"$gte": T0, "$lt": T0 + dt.timedelta(hours=1)}}
    # adjacent hours merge into one range; a late hour a year back is its own range, not a year-long scan
    query = rollups.time_query("event_time", ["2025-09-30T11", "2025-09-30T10", "2024-09-30T10", "2025-09-30T10"])
    assert query == {"$or": [
        {"event_time": {"$gte": dt.datetime(2024, 9, 30, 10, tzinfo=UTC), "$lt": dt.datetime(2024, 9, 30, 11,
                                                                                            tzinfo=UTC)}},
        {"event_time": {"$gte": T0, "$lt": T0 + dt.timedelta(hours=2)}}]}


def test_the_alert_read_leaves_out_shadow_alerts_and_reads_few_fields():
    assert rollups.source_query("alerts", ["2025-09-30T10"])["mode"] == {"$ne": "shadow"}
    assert "mode" not in rollups.source_query("transactions", None)
    proj = rollups.projection(rollups.TX_FIELDS)
    assert proj["_id"] == 0 and set(proj) == {"_id", *rollups.TX_FIELDS}


def test_malformed_hours_are_set_aside_not_fatal():
    good, bad = rollups.valid_hours(["2025-09-30T10", "2025-09-30T10", "yesterday", None, "2025-09-30T09"])
    assert good == ["2025-09-30T09", "2025-09-30T10"] and bad == ["yesterday", None]


# --- what a run writes -------------------------------------------------------------------------


def test_write_plan_skips_equal_documents_and_deletes_vanished_or_old_shaped_ones():
    same = {"_id": "2025-09-30T10|Mumbai", "hour": T0, "location": "Mumbai", "revenue": 1.0}
    changed = {"_id": "2025-09-30T10|Delhi", "hour": T0, "location": "Delhi", "revenue": 2.0}
    new = {"_id": "2025-09-30T10|Pune", "hour": T0, "location": "Pune", "revenue": 3.0}
    stored = [dict(same), {**changed, "revenue": 1.5}, {"_id": "2025-09-30T10|Gone", "revenue": 9.0},
              {"_id": {"hour": T0, "location": "Mumbai"}, "revenue": 1.0}]
    writes, deletes = rollups.plan_writes([same, changed, new], stored)
    assert writes == [changed, new]
    assert deletes == ["2025-09-30T10|Gone", {"hour": T0, "location": "Mumbai"}]
    assert rollups.plan_writes([same], [same]) == ([], [])


def test_id_key_compares_documents_field_by_field_in_order():
    assert rollups.id_key({"a": 1, "b": 2}) != rollups.id_key({"b": 2, "a": 1})
    assert rollups.id_key({"a": [1, {"b": 2}]}) == rollups.id_key({"a": [1, {"b": 2}]})


def test_quality_suites_fill_in_run_time_bounds():
    now = dt.datetime(2025, 10, 1, tzinfo=UTC)
    suite = resolve_suite(load_suites()["transactions"], now)
    bounds = [s["kwargs"].get("max_value") for s in suite if s["kwargs"].get("column") == "event_time"]
    assert now + dt.timedelta(days=1) in bounds and now in bounds
    assert {s["severity"] for s in suite} == {"critical", "warning"}
