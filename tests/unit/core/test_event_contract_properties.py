"""Property-based tests of the cart, stock and review contracts: any bytes or any JSON in, a clean
event or a Rejection out, never an exception; whatever is accepted survives BSON; every valid event
generated from the contract's own description is accepted, unchanged in its meaning."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import bson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from txnmon.core.event_contracts import (
    CART_EVENT_TYPES,
    EVENT_KINDS,
    MAX_REVIEW_CHARS,
    parse_cart_event,
    parse_review,
    parse_stock_event,
)
from txnmon.core.records import Rejection

NOW = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)
UTC = ZoneInfo("UTC")
BUDGET = settings(max_examples=200, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
KINDS = ("carts", "stock", "reviews")
PARSERS = {"carts": parse_cart_event, "stock": parse_stock_event, "reviews": parse_review}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.just(1e308), st.text(),
    st.sampled_from(["\ud800", "a\udfffb", "$where", "a.b", "\x00", "3", "-2", "1e400", " "]),
)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=25)
FIELDS = ("event_id", "event_type", "user_id", "cart_id", "session_id", "product_id", "quantity", "price",
          "timestamp", "currency", "source", "location", "warehouse", "quantity_on_hand", "delta", "review_id",
          "rating", "text", "transaction_id")
# objects that have most of the fields, each with any JSON value: near misses of every contract
shaped = st.fixed_dictionaries({}, optional={name: st.one_of(json_values, st.sampled_from(
    ["item_added", "checkout_started", "2025-10-01T10:00:00Z", "30-09-2025 10:05", "U1", 3, 4.0, -5]))
    for name in FIELDS})


def _encode(obj: object) -> bytes | None:
    try:
        return json.dumps(obj, ensure_ascii=True).encode()  # ASCII escapes carry lone surrogates through
    except (ValueError, TypeError):
        return None


def _check_accepted(event: dict, kind: str) -> None:
    assert event["_id"] == event["review_id" if kind == "reviews" else "event_id"]
    assert NOW - dt.timedelta(days=365 * 30) < event["event_time"] <= NOW + dt.timedelta(days=1)
    assert bson.decode(bson.encode(event))["_id"] == event["_id"]  # storable as it is


@BUDGET
@pytest.mark.parametrize("kind", KINDS)
@given(raw=st.binary(max_size=300))
def test_any_bytes_give_an_event_or_a_rejection(kind, raw):
    out = PARSERS[kind](raw, zone=UTC, now=NOW, max_bytes=200)
    assert isinstance(out, Rejection | dict)


@BUDGET
@pytest.mark.parametrize("kind", KINDS)
@given(value=st.one_of(json_values, shaped))
def test_any_json_gives_an_event_or_a_rejection_never_an_exception(kind, value):
    raw = _encode(value)
    if raw is None:
        return
    out = PARSERS[kind](raw, zone=UTC, now=NOW, max_bytes=65536)
    if isinstance(out, Rejection):
        assert out.reason and out.detail
    else:
        _check_accepted(out, kind)


ids = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FFF, blacklist_categories=("Cs",)),
              min_size=1, max_size=40).filter(lambda s: s.strip() == s)
times = st.datetimes(min_value=dt.datetime(2000, 1, 2), max_value=dt.datetime(2025, 10, 1),
                     timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30))]))
extras = st.dictionaries(st.sampled_from(["label", "channel", "note"]), st.text(max_size=20), max_size=2)

cart_events = st.builds(
    lambda eid, etype, user, cart, product, qty, price, when, extra: {
        "event_id": eid, "event_type": etype, "user_id": user, "cart_id": cart, "product_id": product,
        "quantity": qty, "price": price, "timestamp": when.isoformat(), "currency": "INR", **extra},
    ids, st.sampled_from(CART_EVENT_TYPES), ids, ids, ids, st.integers(1, 10**6),
    st.floats(0, 1e9, allow_nan=False).map(lambda p: round(p, 2)), times, extras)
stock_events = st.builds(
    lambda eid, product, place, count, when, extra: {
        "event_id": eid, "product_id": product, place[0]: place[1], count[0]: count[1],
        "timestamp": when.isoformat(), "source": "wms", **extra},
    ids, ids, st.tuples(st.sampled_from(["location", "warehouse"]), ids),
    st.one_of(st.tuples(st.just("quantity_on_hand"), st.integers(0, 10**9)),
              st.tuples(st.just("delta"), st.integers(-10**9, 10**9))), times, extras)
reviews = st.builds(
    lambda rid, user, product, rating, text, when, extra: {
        "review_id": rid, "user_id": user, "product_id": product, "rating": rating, "text": text,
        "timestamp": when.isoformat(), **extra},
    ids, ids, ids, st.integers(1, 5),
    st.one_of(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300),
              st.just("é" * MAX_REVIEW_CHARS)).filter(str.strip), times, extras)


@BUDGET
@pytest.mark.parametrize(("kind", "events"), [("carts", cart_events), ("stock", stock_events),
                                              ("reviews", reviews)])
@given(data=st.data())
def test_every_valid_event_is_accepted_with_its_values(kind, events, data):
    obj = data.draw(events)
    out = EVENT_KINDS[kind].parse(json.dumps(obj).encode(), zone=UTC, now=NOW, max_bytes=65536)
    assert isinstance(out, dict), out
    _check_accepted(out, kind)
    assert out["event_time"] == dt.datetime.fromisoformat(obj["timestamp"]).astimezone(dt.UTC)
    for name, value in obj.items():
        if name in ("timestamp", "event_type"):
            continue
        assert out[name] == (value.strip() if name == "text" else value), name  # kept, unknown fields too
    if kind == "stock":
        assert out["location"] == obj.get("location", obj.get("warehouse"))
