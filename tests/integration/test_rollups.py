"""Rollups against the real MongoDB-wire server: late data is counted once, re-runs change nothing."""

from __future__ import annotations

import datetime as dt

import pytest

from include.config import SAMPLE_CSV
from include.connectors.mongo import MongoStore
from include.jobs import replay, rollups
from tests.fixtures.pipeline import produce, run_until_idle, tx_row

pytestmark = pytest.mark.integration


def _totals(db) -> dict[str, float]:
    return {r.collection: sum(d.get("revenue", d.get("alerts", 0)) for d in db.find(r.collection))
            for r in rollups.ROLLUPS}


def test_late_transaction_recomputes_its_old_hour_once(isolated_settings):
    s = isolated_settings
    db = MongoStore(s)
    replay.replay_csv(s, SAMPLE_CSV)
    run_until_idle(s)
    first = rollups.run_rollups(db, dt.datetime(2000, 1, 1, tzinfo=dt.UTC), dt.datetime.now(dt.UTC))
    assert first.hours == ["2025-09-30T10", "2025-09-30T11", "2025-09-30T12", "2025-09-30T13"]
    assert _totals(db)["kpi_revenue_minute"] == 777_650
    mark = dt.datetime.now(dt.UTC)
    # a transaction from 10:30 that arrives a day late
    produce(s, [tx_row("LATE-1", "U900", dt.datetime(2025, 9, 30, 10, 30, tzinfo=dt.UTC), 1_000)])
    run_until_idle(s)
    second = rollups.run_rollups(db, mark, dt.datetime.now(dt.UTC))
    assert second.hours == ["2025-09-30T10"]
    totals = _totals(db)
    assert totals["kpi_revenue_minute"] == totals["kpi_location_hour"] == 778_650
    minute = db.find_one("kpi_revenue_minute", {"_id": "2025-09-30T10:30"})
    assert minute["transactions"] == 2 and minute["revenue"] == 4_500 + 1_000  # seed row 14 + the late one
    rollups.run_rollups(db, mark, dt.datetime.now(dt.UTC))  # the same interval again
    assert _totals(db) == totals
    rebuilt = rollups.run_rollups(db, full_rebuild=True)
    assert _totals(db) == totals and rebuilt.documents["kpi_revenue_minute"] == 100  # 10:30 already had one


def test_an_interval_with_nothing_processed_touches_nothing(isolated_settings):
    db = MongoStore(isolated_settings)
    run = rollups.run_rollups(db, dt.datetime(2001, 1, 1, tzinfo=dt.UTC), dt.datetime(2001, 1, 2, tzinfo=dt.UTC))
    assert run.hours == [] and all(n == 0 for n in run.documents.values())
    with pytest.raises(ValueError, match="start and end are required"):
        rollups.run_rollups(db)
