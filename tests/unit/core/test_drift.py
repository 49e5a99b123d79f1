"""The population stability index (src/txnmon/core/drift.py): never negative, about 0 for the same
distribution, larger for a shifted one; bins cut at the reference's quantiles; a model without a
reference says so."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txnmon.core import drift

samples = st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=300)


def test_bins_are_cut_at_the_reference_quantiles_and_hold_a_tenth_each() -> None:
    ref = drift.reference(range(1000))
    assert ref["edges"] == [100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 700.0, 800.0, 900.0]
    assert ref["shares"] == [0.1] * 10


def test_a_constant_reference_keeps_one_bin_and_an_empty_bin_stays_finite() -> None:
    ref = drift.reference([0.5] * 50)
    assert ref == {"edges": [], "shares": [1.0]}
    two = drift.reference([0.0] * 50 + [1.0] * 50, bins=2)
    assert two == {"edges": [1.0], "shares": [0.5, 0.5]}
    value = drift.psi(two["shares"], drift.shares([0.0] * 10, two["edges"]))  # all in one bin
    assert 2 < value < 10


@settings(max_examples=200, deadline=None)
@given(samples, samples)
def test_psi_is_never_negative(reference, current) -> None:
    ref = drift.reference(reference)
    assert drift.psi(ref["shares"], drift.shares(current, ref["edges"])) >= 0


@settings(max_examples=200, deadline=None)
@given(samples)
def test_the_reference_sample_itself_gives_zero(values) -> None:
    ref = drift.reference(values)
    assert drift.psi(ref["shares"], drift.shares(values, ref["edges"])) == pytest.approx(0, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(min_value=0.5, max_value=5))
def test_a_shifted_sample_gives_more_than_a_fresh_one_from_the_same_distribution(seed, shift) -> None:
    rng = random.Random(seed)
    ref = drift.reference([rng.gauss(0, 1) for _ in range(2000)])
    same = [rng.gauss(0, 1) for _ in range(2000)]
    moved = [v + shift for v in same]
    psi_same = drift.psi(ref["shares"], drift.shares(same, ref["edges"]))
    psi_moved = drift.psi(ref["shares"], drift.shares(moved, ref["edges"]))
    assert psi_same < drift.STABLE_BELOW
    assert psi_moved > psi_same
    assert drift.status(psi_moved, len(moved)) in ("moving", "drifted")


def test_the_documented_thresholds() -> None:
    assert drift.status(0.05) == "stable"
    assert drift.status(0.1) == "moving" and drift.status(0.25) == "moving"
    assert drift.status(0.26) == "drifted"
    assert drift.status(3.0, n=drift.MIN_SAMPLE - 1) == "too few"  # a handful of rows never alarms
    assert drift.status(None) == "no reference"


def test_compare_against_a_model_reference_and_without_one() -> None:
    rows = [(float(i), float(i % 7)) for i in range(500)]
    ref = drift.model_reference([i / 500 for i in range(500)], rows, ["amount", "hour"])
    assert set(ref["features"]) == {"amount", "hour"} and ref["score"]["edges"]
    report = drift.compare(ref, {"score": [0.99] * 200, "amount": [float(i) for i in range(500)]})
    by_name = {r["name"]: r for r in report}
    assert by_name["score"]["status"] == "drifted" and by_name["score"]["n"] == 200
    assert by_name["amount"]["status"] == "stable"
    # a version registered before references existed, or a feature the reference lacks
    assert drift.compare(None, {"score": [0.5] * 200})[0]["status"] == "no reference"
    assert drift.compare(ref, {"other": [1.0] * 200})[0]["status"] == "no reference"
    assert drift.compare(ref, {"score": []})[0]["status"] == "no data"
