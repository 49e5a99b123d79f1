"""The risk model's features from hand-built histories (src/txnmon/core/features.py)."""

from __future__ import annotations

import datetime as dt
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from txnmon.core import features
from txnmon.core.rules.state import Event

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def ev(minutes: float, location: str = "Mumbai", amount: float = 1000.0, *, type: str = "purchase",
       status: str = "success", method: str = "UPI", tid: str | None = None) -> Event:
    return Event(T0 + dt.timedelta(minutes=minutes), tid or f"T{minutes}", location, amount, type, status, method)


def vec(event: Event, prior: list[Event]) -> dict[str, float]:
    return features.named(features.compute(event, prior))


def test_the_vector_has_one_value_per_name_in_a_fixed_order() -> None:
    out = features.compute(ev(0), [])
    assert len(out) == len(features.FEATURE_NAMES) == len(set(features.FEATURE_NAMES))
    assert isinstance(features.FEATURE_VERSION, int)


def test_a_first_transaction_has_missing_history_values_not_nan() -> None:
    got = vec(ev(0, amount=500.0), [])
    assert got["prior_events"] == 0
    assert got["amount_to_median"] == features.MISSING
    assert got["km_from_last"] == got["kmh_from_last"] == got["minutes_since_last"] == features.MISSING
    assert got["days_since_first_seen"] == features.MISSING
    assert got["new_location"] == got["new_country"] == got["new_payment_method"] == 0
    assert got["hour_of_day"] == 12.0


def test_amount_against_the_median_of_earlier_purchases_refunds_left_out() -> None:
    prior = [ev(-300, amount=100.0), ev(-200, amount=200.0), ev(-100, amount=300.0),
             ev(-50, amount=90_000.0, type="refund")]
    got = vec(ev(0, amount=2000.0), prior)
    assert got["amount_to_median"] == 10.0  # median of 100, 200, 300
    assert got["refunds_24h"] == 1
    assert got["amount"] == 2000.0 and math.isclose(got["log_amount"], math.log1p(2000.0))


def test_a_trip_abroad_gives_distance_speed_and_a_new_country_and_place() -> None:
    prior = [ev(-24 * 60 * 3, "Mumbai"), ev(-60, "Mumbai")]
    got = vec(ev(0, "London"), prior)
    assert 7000 < got["km_from_last"] < 7400  # Mumbai - London
    assert math.isclose(got["kmh_from_last"], got["km_from_last"])  # an hour apart
    assert got["minutes_since_last"] == 60
    assert got["new_country"] == 1 and got["new_location"] == 1
    assert got["days_since_first_seen"] == 3.0


def test_the_same_city_again_is_no_trip_and_nothing_new() -> None:
    got = vec(ev(0, "Pune"), [ev(-10, "Pune")])
    assert got["km_from_last"] == 0 and got["kmh_from_last"] == 0
    assert got["new_location"] == got["new_country"] == 0


def test_a_trip_in_no_time_is_capped_not_infinite() -> None:
    got = vec(ev(0, "London", tid="b"), [ev(0, "Mumbai", tid="a")])
    assert got["kmh_from_last"] == features.MAX_SPEED_KMH


def test_an_unknown_place_gives_missing_distance() -> None:
    got = vec(ev(0, "Atlantis-on-Sea"), [ev(-5, "Mumbai")])
    assert got["km_from_last"] == got["kmh_from_last"] == features.MISSING
    assert got["new_country"] == 0  # an unknown country tells nothing


def test_a_payment_method_never_used_before() -> None:
    prior = [ev(-100, method="UPI"), ev(-50, method="Card")]
    assert vec(ev(0, method="Wallet"), prior)["new_payment_method"] == 1
    assert vec(ev(0, method="Card"), prior)["new_payment_method"] == 0


def test_checkouts_and_declines_in_their_windows() -> None:
    prior = [ev(-90), ev(-50, status="failed"), ev(-30, status="failed"), ev(-8), ev(-2), ev(-1, type="refund")]
    got = vec(ev(0), prior)
    assert got["checkouts_10m"] == 2  # -8 and -2; the refund is no checkout
    assert got["checkouts_1h"] == 4  # -50, -30, -8, -2
    assert got["declines_1h"] == 2
    assert got["is_failed"] == 0 and vec(ev(0, status="failed"), prior)["is_failed"] == 1


_events = st.builds(
    Event,
    event_time=st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1),
                            timezones=st.just(dt.UTC)),
    transaction_id=st.text(max_size=8),
    location=st.sampled_from(["Mumbai", "London", "Pune", "Nowhere", "", "Paris, US", "Delhi"]),
    amount=st.floats(allow_nan=True, allow_infinity=True),
    type=st.sampled_from(["purchase", "refund"]),
    status=st.sampled_from(["success", "failed"]),
    payment_method=st.sampled_from(["", "UPI", "Card", "Wallet"]),
)


@settings(max_examples=200, deadline=None)
@given(event=_events, prior=st.lists(_events, max_size=12))
def test_features_are_finite_and_deterministic(event: Event, prior: list[Event]) -> None:
    prior = sorted(prior, key=lambda e: e.key)  # the state keeps a history sorted
    first = features.compute(event, prior)
    assert len(first) == len(features.FEATURE_NAMES)
    assert all(isinstance(v, float) and math.isfinite(v) for v in first), features.named(first)
    assert features.compute(event, list(prior)) == first
