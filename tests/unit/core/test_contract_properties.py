"""Property-based tests of the contract: any bytes or any JSON in, a clean transaction or a
rejection out, never an exception; whatever is accepted survives BSON and a rollup.

The budget is bounded (settings below); on a failure Hypothesis prints the falsifying example
and the seed to reproduce it (`--hypothesis-seed=N`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from zoneinfo import ZoneInfo

import bson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from txnmon.core.contract import MAX_AMOUNT, TEXT_FIELDS, Rejection, parse_transaction
from txnmon.core.enrichment import enrich

NOW = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)
ZONES = [ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata"), ZoneInfo("America/Los_Angeles")]
BUDGET = settings(max_examples=300, deadline=None, derandomize=False, print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow])

# JSON scalars including the awkward ones: huge integers, lone surrogates, floats near the limits
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.just(1e308),
    st.text(), st.text(alphabet=st.characters(blacklist_categories=())),
    st.sampled_from(["\ud800", "a\udfffb", "$where", "a.b", "\x00"]),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=25)
timestamps = st.one_of(
    st.sampled_from(["30-09-2025 10:05", "2025-09-30T10:05:00Z", "2025-09-30 10:05", "0001-01-01T00:30:00+01:00",
                     "9999-12-31T23:59:59-05:00", "2025-10-02T11:00:00Z", "not a time", ""]),
    st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                 timezones=st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30))]))
    .map(lambda d: d.isoformat()),
    json_values,
)
transactions = st.fixed_dictionaries(
    {"transaction_id": st.one_of(st.text(min_size=1, max_size=12), st.integers(), json_values),
     "user_id": st.one_of(st.text(min_size=1, max_size=12), st.integers(min_value=0)),
     "amount": st.one_of(st.floats(min_value=0, max_value=2e12), st.integers(min_value=-5, max_value=2**80),
                         st.text(max_size=12), json_values),
     "payment_method": st.one_of(st.sampled_from(["UPI", "Card"]), json_values),
     "location": st.one_of(st.sampled_from(["Mumbai", "São Paulo", "東京"]), json_values),
     "timestamp": timestamps},
    optional={name: json_values for name in (*TEXT_FIELDS, "quantity", "status", "type", "extra", "nested")},
)


def _encode(obj: object) -> bytes | None:
    try:
        return json.dumps(obj, ensure_ascii=True).encode()  # ASCII escapes carry lone surrogates through
    except (ValueError, TypeError):
        return None


def _check_accepted(tx: dict) -> None:
    assert tx["_id"] == tx["transaction_id"] and tx["transaction_id"] and tx["user_id"]
    assert isinstance(tx["amount"], float) and 0 <= tx["amount"] <= MAX_AMOUNT
    assert tx["event_time"].tzinfo is not None
    doc = enrich(tx, [], processed_time=NOW, medium_threshold=5_000, high_threshold=20_000)
    doc["source"] = {"topic": "t", "partition": 0, "offset": 0}
    assert bson.decode(bson.encode(doc))["_id"] == doc["_id"]  # storable as it is
    for key in ("location", "payment_method", "value_category", *TEXT_FIELDS):
        assert doc.get(key) is None or isinstance(doc[key], str)  # rollup keys are text
    assert math.isfinite(doc["amount"] * 1_000_000)  # a million of the largest still sums to a finite number


@BUDGET
@given(st.binary(max_size=400))
def test_any_bytes_give_a_transaction_or_a_rejection(raw):
    out = parse_transaction(raw, zone=ZONES[0], now=NOW, max_bytes=300)
    assert isinstance(out, Rejection | dict)
    if isinstance(out, dict):
        _check_accepted(out)


@BUDGET
@given(json_values)
def test_any_json_gives_a_transaction_or_a_rejection(value):
    raw = _encode(value)
    if raw is not None:
        assert isinstance(parse_transaction(raw, zone=ZONES[0], now=NOW, max_bytes=65536), Rejection | dict)


@BUDGET
@given(transactions, st.sampled_from(ZONES))
def test_transaction_shaped_json_is_accepted_only_when_safe_for_every_later_step(obj, zone):
    raw = _encode(obj)
    if raw is None:
        return
    out = parse_transaction(raw, zone=zone, now=NOW, max_bytes=65536)
    if isinstance(out, Rejection):
        assert out.reason and out.detail
    else:
        _check_accepted(out)


@BUDGET
@given(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                    timezones=st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=-11)),
                                               dt.timezone(dt.timedelta(hours=14))])),
       st.sampled_from(["iso", "day-first"]), st.sampled_from(ZONES))
def test_no_event_time_outside_the_sane_range_is_ever_accepted(when, form, zone):
    """Issue #27 item 7: year 999 once passed and broke every "%Y" rollup key for good."""
    day_first = f"{when.day:02d}-{when.month:02d}-{when.year:04d} {when.hour:02d}:{when.minute:02d}"
    text = when.isoformat() if form == "iso" else day_first
    obj = {"transaction_id": "t1", "user_id": "u1", "amount": 10, "payment_method": "UPI", "location": "Mumbai",
           "timestamp": text}
    out = parse_transaction(json.dumps(obj).encode(), zone=zone, now=NOW, max_bytes=65536)
    if isinstance(out, dict):
        assert dt.datetime(2000, 1, 1, tzinfo=dt.UTC) <= out["event_time"] <= NOW + dt.timedelta(days=1)
        assert len(f"{out['event_time']:%Y}") == 4
    else:
        assert out.reason in ("bad_timestamp", "future_timestamp"), out
