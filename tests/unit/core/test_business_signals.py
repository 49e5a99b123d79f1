"""Business signals over 5-minute event-time buckets: pure, no server, no clock."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txnmon.core import business_signals
from txnmon.core.business_signals import BUCKET, BucketCounts, SignalConfig, SignalState, evaluate

T0 = dt.datetime(2025, 10, 1, 0, 0, tzinfo=dt.UTC)
CONFIG = SignalConfig()


def _normal(i: int, rng: random.Random, *, upi_failed: int | None = None, air_fryer: int = 0,
            bhopal: int = 0) -> BucketCounts:
    failed = rng.choice([0, 0, 1, 1, 2]) if upi_failed is None else upi_failed
    products = {"T-Shirt": 8 + rng.randrange(4), "Air Fryer": 2 + rng.randrange(2) + air_fryer}
    locations = {"Mumbai": 12 + rng.randrange(5), "Pune": 4 + rng.randrange(3)}
    if bhopal:
        locations["Bhopal"] = bhopal
    return BucketCounts(
        payment={"UPI": (50, failed, min(failed, 50)), "Wallet": (10, rng.choice([0, 1]), 1)},
        products={k: (n, n) for k, n in products.items()}, locations={k: (n, n) for k, n in locations.items()})


def _series(n: int = 288, seed: int = 1, outage: range = range(0), spike: range = range(0),
            region: range = range(0)) -> dict[dt.datetime, BucketCounts]:
    rng = random.Random(seed)
    return {T0 + BUCKET * i: _normal(i, rng, upi_failed=30 if i in outage else None,
                                     air_fryer=25 if i in spike else 0, bhopal=8 if i in region else 0)
            for i in range(n)}


def _walk(series, chunks: list[int], config: SignalConfig = CONFIG) -> dict[str, dict]:
    """Evaluate in pieces ending at the given bucket indices; the final episode documents by _id."""
    state, episodes = SignalState(), {}
    for end in chunks:
        result = evaluate(state, series, T0 + BUCKET * end, config)
        state = result.state
        for episode in result.changed:
            episodes[episode["_id"]] = episode
    return episodes


def test_clean_data_raises_nothing():
    assert _walk(_series(), [288]) == {}


def test_an_outage_a_spike_and_a_new_region_each_raise_one_signal_that_clears():
    series = _series(outage=range(100, 106), spike=range(150, 160), region=range(200, 210))
    episodes = _walk(series, [288])
    by_kind = {e["kind"]: e for e in episodes.values()}
    assert sorted(by_kind) == ["new_region", "payment_failure_spike", "trending_product"], episodes.keys()
    assert len(episodes) == 3
    outage = by_kind["payment_failure_spike"]
    assert outage["payment_method"] == "UPI" and outage["opened_at"] == T0 + BUCKET * 100
    assert outage["status"] == "cleared" and outage["cleared_at"] == T0 + BUCKET * 106
    assert outage["baseline_rate"] < 0.05 and outage["peak_rate"] == pytest.approx(0.6)
    spike = by_kind["trending_product"]
    assert spike["product"] == "Air Fryer" and spike["status"] == "cleared"
    assert T0 + BUCKET * 150 <= spike["opened_at"] <= T0 + BUCKET * 152 and spike["cleared_at"] > T0 + BUCKET * 159
    region = by_kind["new_region"]
    assert region["location"] == "Bhopal" and region["status"] == "cleared"
    assert region["opened_at"] == T0 + BUCKET * 201  # 16 sales in the window ending with bucket 201
    assert business_signals.TRENDING_CITY not in by_kind  # a new city is a new region, not also a trending city


def test_an_open_signal_stays_open_while_the_condition_holds_and_is_raised_once():
    series = _series(outage=range(100, 288))
    episodes = _walk(series, [288])
    assert len(episodes) == 1
    (outage,) = episodes.values()
    assert outage["status"] == "open" and outage["buckets"] == 188


def test_one_card_tester_is_not_a_gateway_outage():
    series = _series()
    at = T0 + BUCKET * 120
    series[at] = BucketCounts(payment={"UPI": (50, 30, 1)}, products=series[at].products,
                              locations=series[at].locations)
    assert _walk(series, [288]) == {}


def test_one_buyers_burst_of_orders_is_no_trend():
    series = _series()
    at = T0 + BUCKET * 120
    series[at] = BucketCounts(payment=series[at].payment, products={**series[at].products, "Gift Card": (40, 1)},
                              locations=series[at].locations)
    assert _walk(series, [288]) == {}


def test_traffic_that_rises_for_every_key_alike_is_no_trend():
    series = {at: BucketCounts(c.payment, {k: (n * 5, b * 5) for k, (n, b) in c.products.items()},
                               {k: (n * 5, b * 5) for k, (n, b) in c.locations.items()}) if at >= T0 + BUCKET * 150
              else c for at, c in _series().items()}
    assert _walk(series, [288]) == {}


def test_nothing_is_decided_before_a_full_baseline_exists():
    series = _series(outage=range(0, 5))
    assert _walk(series, [288]) == {}


def test_the_state_survives_a_round_trip_through_its_document():
    series = _series(outage=range(100, 110))
    first = evaluate(SignalState(), series, T0 + BUCKET * 103, CONFIG)
    restored = SignalState.from_document(first.state.to_document())
    assert restored.next_bucket == T0 + BUCKET * 103 and len(restored.open) == 1
    rest = evaluate(restored, series, T0 + BUCKET * 288, CONFIG)
    assert [e["status"] for e in rest.changed] == ["cleared"]


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=287), max_size=8), seed=st.integers(0, 5))
def test_how_the_walk_is_split_into_runs_never_changes_the_signals(cuts, seed):
    series = _series(seed=seed, outage=range(100, 104), spike=range(150, 158), region=range(200, 206))
    assert _walk(series, [*sorted(cuts), 288]) == _walk(series, [288])


def test_bad_thresholds_are_refused_with_the_reason():
    with pytest.raises(business_signals.SignalConfigError, match="factors must be above 1"):
        SignalConfig(trend_factor=1.0)
    with pytest.raises(business_signals.SignalConfigError, match="at least 1 bucket"):
        SignalConfig(trend_window_buckets=0)


def test_signal_ids_cannot_collide():
    assert business_signals.signal_id("k", "a|b", T0) != business_signals.signal_id("k", "a%7Cb", T0)
