"""The contract's fast path for the common flat record (`normalise_flat`, issue 29) against every check
(`normalise_checked`, the contract as it was): the same transaction, field for field and in the same
order, whenever the fast path answers; None (and so the full checks, with their reason) otherwise."""

from __future__ import annotations

import datetime as dt
import json
import math
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from txnmon.core.contract import (
    InvalidTransaction,
    Rejection,
    decode_message,
    normalise,
    normalise_checked,
    normalise_flat,
    parse_transaction,
)
from txnmon.synthetic.generator import GeneratorSpec, generate

NOW = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)
ZONES = [ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata"), ZoneInfo("America/Los_Angeles")]
BUDGET = settings(max_examples=400, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])


def exact(value: Any) -> Any:
    """A value with its types and key order spelled out: 1 == 1.0 == True, and 0.0 == -0.0, are not the same."""
    if isinstance(value, dict):
        return [(k, exact(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [exact(v) for v in value]
    return (type(value).__name__, repr(value))


def checked(obj: Any, zone: ZoneInfo, now: dt.datetime) -> dict[str, Any] | Rejection:
    try:
        return normalise_checked(obj, zone=zone, now=now)
    except InvalidTransaction as exc:
        return exc.rejection


# --- generated records: mostly the common shape, each field now and then something unusual -------------

fractions = st.integers(0, 10**9 - 1).flatmap(
    lambda n: st.integers(1, 9).map(lambda d: "." + str(n).zfill(9)[:d]))
offsets = st.sampled_from(["Z", "", "+00:00", "+05:30", "-08:00", "+14:00", "-12:00"])
iso_times = st.tuples(st.datetimes(min_value=dt.datetime(1999, 12, 30), max_value=dt.datetime(2025, 10, 3)),
                      st.sampled_from(["T", " "]), st.one_of(st.just(""), fractions), offsets).map(
    lambda p: p[0].strftime(f"%Y-%m-%d{p[1]}%H:%M:%S") + p[2] + p[3])
# the common record: every field of the contract's usual shape (a few borderline, e.g. 128-character ids)
usual = {
    "transaction_id": st.one_of(st.text(alphabet="AGU-0123456789 ", min_size=1, max_size=14).filter(str.strip),
                                st.integers(0, 10**6), st.just("x" * 128)),
    "user_id": st.one_of(st.sampled_from(["U000160", " U1 ", "y" * 128]), st.integers(-(2**63), 2**63 - 1)),
    "amount": st.one_of(st.floats(min_value=0, max_value=1e12), st.integers(0, 10**12), st.just(-0.0)),
    "payment_method": st.sampled_from(["UPI", "Credit Card", " Debit Card ", "x" * 256]),
    "location": st.sampled_from(["Mumbai", "Delhi ", "z" * 256]),
    "timestamp": st.one_of(iso_times, st.sampled_from(["30-09-2025 10:05", "30/09/2025 10:05:07", "2025-09-30 10:05",
                                                       " 2025-09-30T10:05:00Z "])),
    "product": st.one_of(st.sampled_from(["Novel", " Laptop ", "p" * 128]), st.integers(0, 99)),
    "category": st.sampled_from(["Books", "Home & Kitchen", "c" * 256, ""]),
    "country": st.sampled_from(["IN", "US", None]), "currency": st.sampled_from(["INR", "USD"]),
    "quantity": st.one_of(st.integers(0, 10), st.floats(min_value=0, max_value=1e9), st.none()),
    "status": st.sampled_from(["success", "failed", "SUCCESS", " Failed ", None]),
    "type": st.sampled_from(["purchase", "refund", "Refund"]),
}
REQUIRED = ("transaction_id", "user_id", "amount", "payment_method", "location", "timestamp")
# what breaks it: any value at all, and each field's own near misses
odd = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([2**63, -(2**63) - 1, 2**70]),
    st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, 7.0, 7.5, 1e308, 1e12 + 1, 1e9 + 1, -1]),
    st.text(max_size=6), st.sampled_from(["", "  ", "São Paulo", "東京", "\ud800", "a\udfffb", "$x", "a.b", "\x00",
                                          "x" * 129, "y" * 257, "12.50", "1,000", "3", "nan", "ok", "sale",
                                          "2025-10-02T12:00:01Z", "1999-12-31T23:59:59Z", "not a time",
                                          "0001-01-01T00:30:00+01:00", "31-12-1999 23:59"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["a", "$x", "a.b", "é"]), st.integers(), max_size=2),
)
extra_names = st.one_of(st.sampled_from(["behaviour", "note", "_id", "event_time", "$x", "a.b", "x$", "a\x00", "é",
                                         "", "source"]), st.text(max_size=5))
extra_values = st.one_of(st.sampled_from(["ordinary", "multi_item_checkout", 1, 2.5, True, None]), odd,
                         st.sampled_from([math.nan, math.inf, 2**63, "\ud800", "é", [1], {"a": 1}]))
records = st.builds(
    lambda required, optional, changes, extra: {**extra, **required, **optional, **dict(changes)},
    st.fixed_dictionaries({name: usual[name] for name in REQUIRED}),
    st.fixed_dictionaries({}, optional={name: s for name, s in usual.items() if name not in REQUIRED}),
    st.lists(st.tuples(st.sampled_from(sorted(usual)), odd), max_size=2),
    st.dictionaries(extra_names, extra_values, max_size=3),
).flatmap(lambda rec: st.sets(st.sampled_from(REQUIRED), max_size=1).map(
    lambda gone: {k: v for k, v in rec.items() if k not in gone}))


@BUDGET
@given(records, st.sampled_from(ZONES), st.datetimes(min_value=dt.datetime(2025, 9, 1),
                                                       max_value=dt.datetime(2025, 11, 1), timezones=st.just(dt.UTC)))
def test_the_fast_path_answers_only_what_every_check_would(obj, zone, now):
    fast = normalise_flat(obj, zone=zone, now=now)
    full = checked(obj, zone, now)
    if fast is not None:
        assert isinstance(full, dict), full
        assert exact(fast) == exact(full)
    try:
        answer = normalise(obj, zone=zone, now=now)
    except InvalidTransaction as exc:
        answer = exc.rejection
    assert exact(answer) == exact(full) if isinstance(full, dict) else answer == full


@BUDGET
@given(records, st.sampled_from(ZONES))
def test_messages_get_the_same_transaction_or_rejection_as_before(obj, zone):
    try:
        raw = json.dumps(obj, ensure_ascii=True).encode()  # NaN and Infinity go as tokens the decoder refuses
    except (ValueError, TypeError):
        return
    out = parse_transaction(raw, zone=zone, now=NOW, max_bytes=65536)
    try:
        before = checked(decode_message(raw, 65536), zone, NOW)
    except InvalidTransaction as exc:
        before = exc.rejection
    assert exact(out) == exact(before) if isinstance(before, dict) else out == before


def test_the_generators_records_take_the_fast_path():
    """The shape the producer and the bench send is the common one: none of it falls back."""
    rows = generate(GeneratorSpec(rows=300, users=30, fraud_rate=0.05, seed=3, days=1)).to_dict("records")
    for row in rows:
        obj = decode_message(json.dumps({k: v for k, v in row.items() if v != ""}).encode(), 65536)
        fast = normalise_flat(obj, zone=ZONES[1], now=NOW + dt.timedelta(days=30))
        assert fast is not None, obj
        assert exact(fast) == exact(normalise_checked(obj, zone=ZONES[1], now=NOW + dt.timedelta(days=30)))


def test_unusual_records_fall_back_to_every_check():
    base = {"transaction_id": "T1", "user_id": 7, "amount": 12, "payment_method": "UPI", "location": "Delhi",
            "timestamp": "2025-09-30T10:05:00.123456789+05:30", "quantity": 2.0, "product": 42}
    assert normalise_flat(base, zone=ZONES[0], now=NOW) is not None
    borderline = {"transaction_id": "x" * 128, "location": "y" * 256, "status": " SUCCESS ", "type": "Refund"}
    assert normalise_flat({**base, **borderline}, zone=ZONES[0], now=NOW) is not None
    for change in ({"note": {"a": 1}}, {"note": [1]}, {"$x": 1}, {"a.b": 1}, {"é": 1}, {"location": "São Paulo"},
                   {"amount": "12"}, {"amount": math.nan}, {"note": math.nan}, {"note": -math.inf},
                   {"note": 2**63}, {"note": "\ud800"}, {"user_id": 7.0}, {"user_id": " "},
                   {"timestamp": "2030-01-01T00:00:00Z"}, {"status": "ok"}, {"quantity": "2"}):
        assert normalise_flat({**base, **change}, zone=ZONES[0], now=NOW) is None, change
    assert normalise_flat(MappingProxyType(base), zone=ZONES[0], now=NOW) is None
    assert exact(normalise(MappingProxyType(base), zone=ZONES[0], now=NOW)) == exact(
        normalise_flat(base, zone=ZONES[0], now=NOW))
