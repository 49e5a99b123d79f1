"""The cart, stock and review contracts: what each accepts and normalises, the reason and the field
named when it refuses, and a bad event of each kind judged into the DLQ as a transaction would be."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from txnmon.core.batch import BatchResult
from txnmon.core.event_contracts import (
    EVENT_KINDS,
    MAX_REVIEW_CHARS,
    event_kind,
    parse_cart_event,
    parse_review,
    parse_stock_event,
)
from txnmon.core.event_dlq import judge_event
from txnmon.core.records import Rejection, SourceRecord
from txnmon.errors import UsageError

NOW = dt.datetime(2025, 10, 1, 12, tzinfo=dt.UTC)
UTC = ZoneInfo("UTC")

CART = {"event_id": "C1", "event_type": "Item_Added", "user_id": "U1", "cart_id": "K1", "product_id": "Laptop",
        "quantity": "2", "price": 42000.5, "timestamp": "2025-10-01T10:00:00Z", "currency": "INR", "label": "x"}
STOCK = {"event_id": "S1", "product_id": "Laptop", "warehouse": "Mumbai", "delta": -3,
         "timestamp": "2025-10-01 10:00", "source": "wms"}
REVIEW = {"review_id": "R1", "user_id": "U1", "product_id": "Laptop", "rating": 4.0, "text": " good ",
          "timestamp": "2025-10-01T10:00:00Z", "transaction_id": "T1"}


def _parse(parse, obj):
    return parse(json.dumps(obj).encode(), zone=UTC, now=NOW, max_bytes=64 * 1024)


def test_valid_events_are_normalised_and_unknown_fields_kept():
    cart = _parse(parse_cart_event, CART)
    assert (cart["_id"], cart["event_type"], cart["quantity"], cart["price"], cart["label"]) == (
        "C1", "item_added", 2, 42000.5, "x")
    assert cart["event_time"] == dt.datetime(2025, 10, 1, 10, tzinfo=dt.UTC)
    stock = _parse(parse_stock_event, STOCK)
    assert (stock["_id"], stock["location"], stock["delta"], "quantity_on_hand" in stock) == ("S1", "Mumbai", -3, False)
    review = _parse(parse_review, REVIEW)
    assert (review["_id"], review["rating"], review["text"], review["transaction_id"]) == ("R1", 4, "good", "T1")
    # a cart's first and last events name no product
    created = _parse(parse_cart_event, {"event_id": "C0", "event_type": "cart_created", "user_id": "U1",
                                        "session_id": "S9", "timestamp": "2025-10-01T09:59:00Z"})
    assert created["session_id"] == "S9" and "product_id" not in created
    # an empty optional field is no field, as a replayed CSV's empty cell
    checkout = _parse(parse_cart_event, {"event_id": "C9", "event_type": "checkout_started", "user_id": "U1",
                                         "cart_id": "K1", "product_id": "", "price": " ", "currency": "",
                                         "timestamp": "2025-10-01T10:09:00Z"})
    assert not {"product_id", "price", "currency"} & set(checkout)


@pytest.mark.parametrize(("parse", "base", "change", "reason", "names"), [
    (parse_cart_event, CART, {"event_type": "paid"}, "bad_field", "event_type"),
    (parse_cart_event, CART, {"cart_id": None}, "missing_field", "cart_id or session_id"),
    (parse_cart_event, CART, {"product_id": ""}, "missing_field", "product_id"),
    (parse_cart_event, CART, {"quantity": 0}, "bad_field", "quantity"),
    (parse_cart_event, CART, {"quantity": 1.5}, "bad_field", "quantity"),
    (parse_cart_event, CART, {"price": -1}, "bad_amount", "price"),
    (parse_cart_event, CART, {"price": "abc"}, "bad_amount", "price"),
    (parse_cart_event, CART, {"user_id": "u" * 200}, "bad_field", "user_id"),
    (parse_cart_event, CART, {"timestamp": "2025-10-03T10:00:00Z"}, "future_timestamp", "timestamp"),
    (parse_cart_event, CART, {"timestamp": "1999-12-31T10:00:00Z"}, "bad_timestamp", "timestamp"),
    (parse_cart_event, CART, {"$set": 1}, "forbidden_key", "$set"),
    (parse_stock_event, STOCK, {"quantity_on_hand": 5}, "bad_field", "quantity_on_hand and delta"),
    (parse_stock_event, STOCK, {"delta": None}, "missing_field", "quantity_on_hand or delta"),
    (parse_stock_event, STOCK, {"warehouse": " "}, "missing_field", "location or warehouse"),
    (parse_stock_event, STOCK, {"delta": None, "quantity_on_hand": -1}, "bad_field", "quantity_on_hand"),
    (parse_stock_event, STOCK, {"source": None}, "missing_field", "source"),
    (parse_stock_event, STOCK, {"timestamp": "soon"}, "bad_timestamp", "soon"),
    (parse_review, REVIEW, {"rating": 6}, "bad_field", "rating"),
    (parse_review, REVIEW, {"rating": True}, "bad_field", "rating"),
    (parse_review, REVIEW, {"text": "x" * (MAX_REVIEW_CHARS + 1)}, "bad_field", "text"),
    (parse_review, REVIEW, {"text": 5}, "bad_field", "text"),
    (parse_review, REVIEW, {"review_id": ""}, "missing_field", "review_id"),
    (parse_review, REVIEW, {"extra": float("inf")}, "not_json", "not JSON"),
])
def test_a_bad_event_is_refused_with_the_reason_and_the_field(parse, base, change, reason, names):
    obj = {**base, **change}
    got = parse(json.dumps({k: v for k, v in obj.items()}).encode(), zone=UTC, now=NOW, max_bytes=64 * 1024)
    assert isinstance(got, Rejection)
    assert got.reason == reason and names in got.detail


@pytest.mark.parametrize("raw, reason", [(b"\xff", "not_utf8"), (b"[1]", "not_object"), (b"{", "not_json"),
                                         (b'{"a": "' + b"x" * 300 + b'"}', "too_large")])
def test_every_kind_refuses_bytes_as_the_transaction_contract_does(raw, reason):
    for kind in EVENT_KINDS.values():
        got = kind.parse(raw, zone=UTC, now=NOW, max_bytes=256)
        assert isinstance(got, Rejection) and got.reason == reason


def test_the_registry_names_every_kind_and_refuses_others():
    assert list(EVENT_KINDS) == ["transactions", "carts", "stock", "reviews"]
    assert event_kind("reviews").parse is parse_review
    with pytest.raises(UsageError, match="carts"):
        event_kind("clicks")


@pytest.mark.parametrize(("kind", "obj", "reason"), [
    ("carts", {**CART, "quantity": -1}, "bad_field"),
    ("stock", {**STOCK, "delta": "many"}, "bad_field"),
    ("reviews", {**REVIEW, "rating": 0}, "bad_field"),
])
def test_a_bad_event_of_each_kind_reaches_the_dlq_like_a_transaction(kind, obj, reason):
    record = SourceRecord(f"{kind}.raw", 2, 17, b"k", json.dumps(obj).encode(), 0)
    judged = judge_event(kind, record, zone=UTC, now=NOW, max_bytes=64 * 1024, rules_version="v1")
    assert judged.event is None and judged.rejection.reason == reason
    # the same message and document the transactions' batch builds for a rejected record
    expected = BatchResult()
    expected.reject(record, judged.rejection, NOW, "validate", "v1")
    assert judged.dlq == expected.dlq[0]
    assert judged.rejected == expected.rejected[0]
    headers = dict(judged.dlq[2])
    assert headers["txnmon.reason"] == reason.encode() and headers["txnmon.source.topic"] == f"{kind}.raw".encode()
    assert judged.rejected["_id"] == f"{kind}.raw:2:17" and judged.rejected["original"] == record.value


def test_a_good_event_is_not_sent_to_the_dlq():
    record = SourceRecord("reviews.raw", 0, 1, None, json.dumps(REVIEW).encode(), 0)
    judged = judge_event("reviews", record, zone=UTC, now=NOW, max_bytes=64 * 1024)
    assert judged.event["_id"] == "R1" and judged.dlq is None and judged.rejected is None
