"""The pipeline checks' arithmetic (no server): ages, volume baseline, reconciliation, rollup sums, DLQ rate."""

from __future__ import annotations

import datetime as dt

from txnmon.core import pipeline_checks as checks

NOW = dt.datetime(2026, 1, 2, 12, 0, tzinfo=dt.UTC)


def test_age_against_the_clock():
    assert checks.age_s(NOW - dt.timedelta(minutes=5), NOW) == 300
    assert checks.age_s(dt.datetime(2026, 1, 2, 11, 0), NOW) == 3600  # naive times are UTC, as pymongo gives them
    assert checks.age_s(None, NOW) is None


def test_volume_against_the_median_of_earlier_days_with_data():
    assert checks.volume_ratio(50, [100, 0, 120, 80, 0, 0, 0]) == (100.0, 0.5)
    assert checks.volume_ratio(50, [0] * 7) == (None, None)  # no baseline yet: not judged


def test_reconciliation_counts_stored_rejected_duplicates_and_the_unaccounted():
    p = checks.PartitionReconciliation(partition=1, first_offset=10, end_offset=20, processed_to=18)
    missing = checks.missing_offsets(p, stored=[9, 10, 11, 12, 13, 14, 15], rejected=[16, 30])
    assert missing == [17] and (p.stored, p.rejected, p.unprocessed) == (6, 1, 2)  # 18, 19 not processed yet
    checks.settle_missing(p, missing, {17: "T-5"}, stored_ids={"T-5"})
    assert p.duplicates == 1 and p.unaccounted == []  # an identical re-send of a stored transaction
    q = checks.PartitionReconciliation(partition=0, first_offset=0, end_offset=3, processed_to=3)
    lost = checks.missing_offsets(q, stored=[0], rejected=[])
    checks.settle_missing(q, lost, {1: "T-1", 2: None}, stored_ids=set())
    assert q.unaccounted == [1, 2] and q.as_dict()["unaccounted"] == 2


def test_rollup_hour_compares_counts_and_revenue_computed_independently():
    txs = [{"amount": 100.0}, {"amount": 50.5, "status": "failed"}, {"amount": 20.0, "type": "refund"},
           {"amount": 0.1}, {"amount": 0.2}]
    assert checks.hour_totals(txs) == (5, 100.3)
    good = [{"transactions": 3, "revenue": 100.0}, {"transactions": 2, "revenue": 0.3}]
    assert checks.compare_hour("2026-01-02T11", good, txs) is None
    bad = [{"transactions": 5, "revenue": 90.3}]
    assert checks.compare_hour("2026-01-02T11", bad, txs) == {
        "hour": "2026-01-02T11", "stored_transactions": 5, "kpi_transactions": 5, "stored_revenue": 100.3,
        "kpi_revenue": 90.3}
    assert checks.compare_hour("h", [{"transactions": 4, "revenue": 100.3}], txs)["kpi_transactions"] == 4


def test_dlq_rate():
    assert checks.dlq_rate(5, 95) == 0.05
    assert checks.dlq_rate(0, 0) is None
