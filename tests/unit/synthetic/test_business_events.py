"""Business events injected into generated data: parsing, effects, labels, determinism."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from txnmon.synthetic.business_events import inject, parse_event
from txnmon.synthetic.generator import GeneratorError, GeneratorSpec, generate

DAY = dt.date(2025, 10, 1)


@pytest.fixture(scope="module")
def day() -> pd.DataFrame:
    return generate(GeneratorSpec(rows=6_000, users=600, seed=3, start=DAY))


def _events():
    return [parse_event("gateway_outage", "UPI@12:00/30", DAY), parse_event("product_spike", "Air Fryer@14:00/60", DAY),
            parse_event("new_region", "Bhopal@17:00/60", DAY)]


def test_each_event_changes_only_its_span_and_is_labelled(day):
    out = inject(day, _events(), seed=3)
    ts = pd.to_datetime(out["timestamp"], utc=True)
    outage = out[out["business_event"] == "gateway_outage"]
    assert len(outage) > 10 and set(outage["payment_method"]) == {"UPI"} and set(outage["status"]) == {"failed"}
    assert ts[outage.index].min() >= pd.Timestamp("2025-10-01T12:00Z") and ts[outage.index].max() < pd.Timestamp(
        "2025-10-01T12:30Z")
    spike = out[out["business_event"] == "product_spike"]
    assert len(spike) == 200 and set(spike["product"]) == {"Air Fryer"} and set(spike["category"]) == {"Home & Kitchen"}
    region = out[out["business_event"] == "new_region"]
    assert len(region) == 80 and set(region["location"]) == {"Bhopal"} and region["user_id"].str.startswith("R").all()
    assert len(out) == len(day) + 280 and out["transaction_id"].is_unique
    assert list(ts) == sorted(ts)  # still in time order
    assert inject(day, _events(), seed=3).equals(out)  # the same seed, the same rows


@pytest.mark.parametrize(("kind", "text", "message"), [
    ("gateway_outage", "UPI", "expected NAME@HH:MM/MINUTES"),
    ("gateway_outage", "UPI@24:00/30", "time must be"),
    ("product_spike", "Tea@10:00/0", "span 1-1440"),
])
def test_bad_event_specs_say_what_is_wrong(kind, text, message):
    with pytest.raises(GeneratorError, match=message):
        parse_event(kind, text, DAY)


def test_an_outage_of_an_unknown_method_and_a_region_that_already_sells_are_refused(day):
    with pytest.raises(GeneratorError, match="no Bitcoin payments"):
        inject(day, [parse_event("gateway_outage", "Bitcoin@12:00/30", DAY)])
    with pytest.raises(GeneratorError, match="Mumbai already has sales"):
        inject(day, [parse_event("new_region", "Mumbai@12:00/30", DAY)])
