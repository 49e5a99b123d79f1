"""bench/latency_stages.py: an alert's latency split where its transaction crossed the processor's batches."""

from __future__ import annotations

import pytest

from bench.latency_stages import Batch, split
from bench.steps import percentile


def _batch(start: float, end: float, raw: list[str], by_user: list[str]) -> Batch:
    return Batch(start, raw, by_user, len(raw), len(by_user), end=end)


def test_each_part_is_the_time_between_the_batches_it_crossed() -> None:
    routed = _batch(1.010, 1.030, ["L1"], [])
    judged = _batch(1.045, 1.145, [], ["L1"])
    (traced,) = split([routed, judged], {"L1": 1.000}, {"L1": 1.150}, steady=0.0)
    assert traced.total_ms == pytest.approx(150)
    assert traced.parts == pytest.approx({"to raw batch": 10, "raw batch": 20, "to judging": 15,
                                          "judging batch": 100, "to reader": 5})
    assert sum(traced.parts.values()) == pytest.approx(traced.total_ms)
    assert traced.routed_in is routed and traced.judged_in is judged


def test_warm_up_unread_and_untraced_alerts_are_left_out_and_the_rest_sorted_slowest_last() -> None:
    batches = [_batch(1.0, 1.1, ["L1", "L2", "L3"], []), _batch(1.2, 1.3, [], ["L1", "L2", "L4"])]
    sent = {"L0": 0.5, "L1": 0.95, "L2": 0.9, "L3": 0.9, "L4": 0.9}
    found = {"L0": 1.4, "L1": 1.4, "L2": 1.4, "L4": 1.4}  # L3 never read back
    rows = split(batches, sent, found, steady=0.6)  # L0 in the warm-up, L4 never routed in a traced batch
    assert [t.transaction_id for t in rows] == ["L1", "L2"]


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0, 1.0, 2.0], 1.0) == 3.0
