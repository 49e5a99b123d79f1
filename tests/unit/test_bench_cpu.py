"""bench/cpu.py: the processor's hot path in-process, timed over the half of the input that meets history."""

from __future__ import annotations

from bench.cpu import STAGES, HotPath, cpu_per_transaction, history_rows, raw_records
from txnmon.settings import load_settings


def test_the_cpu_figure_covers_the_timed_half_and_is_the_sum_of_its_stages():
    rows = history_rows(400, days=30, per_user=40)
    measured = cpu_per_transaction(rows, batch=100)
    assert measured["timed_transactions"] == 200 and measured["users"] <= 10
    stages = measured["stages_us_per_tx"]
    assert set(stages) == set(STAGES) and all(v > 0 for v in stages.values())
    assert abs(sum(stages.values()) - measured["us_per_tx"]) < 1


def test_the_hot_path_stores_every_generated_transaction_and_keeps_users_on_their_partition():
    import datetime as dt

    rows = history_rows(300, days=1, per_user=10)
    path = HotPath(load_settings(metrics_port=0))
    records = raw_records(rows)
    assert path.batch(records, dt.datetime.now(dt.UTC), None) == len(rows)  # nothing rejected as a duplicate
    assert set(path.partition_of) == {str(r["user_id"]).strip() for r in rows}
