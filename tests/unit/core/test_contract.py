"""The data contract of transactions.raw, one rejection class at a time."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from txnmon.core import contract
from txnmon.core.contract import Rejection, parse_timestamp, parse_transaction

NOW = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)
UTC = ZoneInfo("UTC")
VALID = {"transaction_id": 1, "user_id": "U001", "amount": 4500, "payment_method": "Credit Card",
         "location": "Mumbai", "timestamp": "30-09-2025 10:05"}


def parse(obj: object, *, raw: bytes | None = None, zone: ZoneInfo = UTC, max_bytes: int = 65536):
    data = raw if raw is not None else json.dumps(obj).encode()
    return parse_transaction(data, zone=zone, now=NOW, max_bytes=max_bytes)


def test_seed_row_is_normalised():
    tx = parse(VALID)
    assert tx["_id"] == tx["transaction_id"] == "1"
    assert tx["amount"] == 4500.0 and isinstance(tx["amount"], float)
    assert tx["event_time"] == dt.datetime(2025, 9, 30, 10, 5, tzinfo=dt.UTC)
    assert tx["timestamp"] == "30-09-2025 10:05"


@pytest.mark.parametrize(("text", "expected"), [
    ("2025-09-30T14:32:00Z", dt.datetime(2025, 9, 30, 14, 32, tzinfo=dt.UTC)),
    ("2025-09-30T16:32:00+02:00", dt.datetime(2025, 9, 30, 14, 32, tzinfo=dt.UTC)),
    ("2025-09-30 14:32:00", dt.datetime(2025, 9, 30, 14, 32, tzinfo=dt.UTC)),
    ("2025-09-30 14:32", dt.datetime(2025, 9, 30, 14, 32, tzinfo=dt.UTC)),
    ("2025-09-30T14:32:00.250", dt.datetime(2025, 9, 30, 14, 32, 0, 250000, tzinfo=dt.UTC)),
    ("30-09-2025 14:32", dt.datetime(2025, 9, 30, 14, 32, tzinfo=dt.UTC)),
    ("30-09-2025 14:32:10", dt.datetime(2025, 9, 30, 14, 32, 10, tzinfo=dt.UTC)),
])
def test_accepted_timestamp_forms(text, expected):
    assert parse_timestamp(text, UTC) == expected


def test_naive_times_are_read_in_the_configured_zone():
    kolkata = ZoneInfo("Asia/Kolkata")
    assert parse_timestamp("30-09-2025 10:05", kolkata) == dt.datetime(2025, 9, 30, 4, 35, tzinfo=dt.UTC)
    assert parse_timestamp("2025-09-30T10:05:00Z", kolkata) == dt.datetime(2025, 9, 30, 10, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(("change", "reason"), [
    ({"amount": "abc"}, contract.BAD_AMOUNT),
    ({"amount": -1}, contract.BAD_AMOUNT),
    ({"amount": True}, contract.BAD_AMOUNT),
    ({"amount": [1]}, contract.BAD_AMOUNT),
    ({"amount": "1e999"}, contract.BAD_AMOUNT),
    ({"amount": "NaN"}, contract.BAD_AMOUNT),
    ({"amount": ""}, contract.MISSING_FIELD),
    ({"user_id": ""}, contract.MISSING_FIELD),
    ({"user_id": "   "}, contract.MISSING_FIELD),
    ({"location": None}, contract.MISSING_FIELD),
    ({"user_id": {"a": 1}}, contract.BAD_FIELD),
    ({"location": 12}, contract.BAD_FIELD),
    ({"status": "pending"}, contract.BAD_FIELD),
    ({"type": "chargeback"}, contract.BAD_FIELD),
    ({"quantity": "many"}, contract.BAD_FIELD),
    ({"timestamp": "yesterday"}, contract.BAD_TIMESTAMP),
    ({"timestamp": 1727690700}, contract.BAD_TIMESTAMP),
    ({"timestamp": "31-02-2025 10:00"}, contract.BAD_TIMESTAMP),
    ({"timestamp": "2025-10-03T12:00:00Z"}, contract.FUTURE_TIMESTAMP),
    ({"$where": "1"}, contract.FORBIDDEN_KEY),
    ({"meta": {"a.b": 1}}, contract.FORBIDDEN_KEY),
    ({"meta": [{"$gt": 1}]}, contract.FORBIDDEN_KEY),
])
def test_each_rejection_class_names_its_reason(change, reason):
    result = parse({**VALID, **change})
    assert isinstance(result, Rejection), result
    assert result.reason == reason
    assert result.detail


def test_missing_field_lists_every_missing_name():
    result = parse({"transaction_id": "T1", "amount": 1})
    assert result.reason == contract.MISSING_FIELD
    for name in ("user_id", "payment_method", "location", "timestamp"):
        assert name in result.detail


@pytest.mark.parametrize(("raw", "reason"), [
    (b"\xff\xfe not utf-8", contract.NOT_UTF8),
    (b"{not json", contract.NOT_JSON),
    (b'{"amount": NaN}', contract.NOT_JSON),
    (b"[1, 2]", contract.NOT_OBJECT),
    (b'"text"', contract.NOT_OBJECT),
    (b"", contract.NOT_JSON),
])
def test_undecodable_messages(raw, reason):
    assert parse(None, raw=raw).reason == reason


def test_size_limit():
    big = {**VALID, "note": "x" * 1000}
    assert parse(big, max_bytes=500).reason == contract.TOO_LARGE
    assert isinstance(parse(big, max_bytes=5000), dict)


def test_a_day_ahead_is_still_accepted_for_clock_skew():
    tx = parse({**VALID, "timestamp": "2025-10-02T11:00:00Z"})
    assert isinstance(tx, dict)


def test_numeric_strings_unicode_and_extra_fields_are_kept():
    tx = parse({**VALID, "amount": " 1,250.50 ", "location": "São Paulo", "transaction_id": 7.0,
                "device": {"os": "android"}, "status": "FAILED", "type": "Refund", "quantity": "2"})
    assert tx["amount"] == 1250.5
    assert tx["location"] == "São Paulo"
    assert tx["transaction_id"] == "7"
    assert tx["device"] == {"os": "android"}
    assert (tx["status"], tx["type"], tx["quantity"]) == ("failed", "refund", 2)


# --- inputs that used to pass validation and then break a later step (issue: hardening) -------


def _raw(**change: object) -> bytes:
    return json.dumps({**VALID, **change}).encode()


@pytest.mark.parametrize(("raw", "reason", "says"), [
    (_raw(amount=10**400), "bad_amount", "too large"),  # float() raised OverflowError
    (_raw(amount=2e12), "bad_amount", "maximum"),  # sums of a few would no longer be exact or finite
    (_raw(quantity=10**400), "bad_field", "quantity"),
    (_raw(timestamp="0001-01-01T00:30:00+01:00"), "bad_timestamp", "range"),  # UTC conversion overflowed
    (_raw(timestamp="9999-12-31T23:30:00-01:00"), "bad_timestamp", "range"),
    (_raw(note="\ud800"), "bad_field", "UTF-8"),  # valid JSON escape, not encodable
    (_raw(**{"\udfff": 1}), "bad_field", "UTF-8"),
    (_raw(extra=json.loads("[" * 30 + "]" * 30)), "bad_field", "nested deeper"),  # refused by the store
    (_raw(extra=2**63), "bad_field", "64-bit"),  # BSON has no integer that large
    (_raw(product={"name": "x"}), "bad_field", "product"),  # would break $concat in the rollups
    (_raw(category=["a"]), "bad_field", "category"),
    (_raw(user_id=10**30), "bad_field", "user_id"),
    (b'{"transaction_id": 1, "user_id": "U", "amount": 1e400, "payment_method": "UPI", "location": "X",'
     b' "timestamp": "30-09-2025 10:05"}', "bad_amount", "finite"),
    (b'{"transaction_id": 1, "user_id": "U", "amount": 1, "payment_method": "UPI", "location": "X",'
     b' "timestamp": "30-09-2025 10:05", "x": -1e400}', "bad_field", "not finite"),
])
def test_inputs_that_would_break_a_later_step_are_rejected_with_a_reason(raw, reason, says):
    out = parse_transaction(raw, zone=UTC, now=NOW, max_bytes=65536)
    assert isinstance(out, Rejection), out
    assert out.reason == reason and says in out.detail


def test_numeric_product_codes_become_text():
    out = parse_transaction(_raw(product=12345, category=7.0), zone=UTC, now=NOW, max_bytes=65536)
    assert out["product"] == "12345" and out["category"] == "7"


# --- bounds that keep every derived document small (issue #27 items 1 and 7) -------------------


@pytest.mark.parametrize(("field", "limit"), [
    ("transaction_id", contract.MAX_ID_CHARS), ("user_id", contract.MAX_ID_CHARS), ("product", contract.MAX_ID_CHARS),
    ("payment_method", contract.MAX_TEXT_CHARS), ("location", contract.MAX_TEXT_CHARS),
    ("category", contract.MAX_TEXT_CHARS), ("country", contract.MAX_TEXT_CHARS),
    ("currency", contract.MAX_TEXT_CHARS),
])
def test_long_text_fields_are_rejected_naming_the_field(field, limit):
    assert isinstance(parse({**VALID, field: "x" * limit}), dict)  # the limit itself is fine
    out = parse({**VALID, field: "x" * (limit + 1)})
    assert isinstance(out, Rejection), out
    assert out.reason == "bad_field" and field in out.detail and str(limit) in out.detail


def test_a_60_kb_transaction_id_is_rejected():
    out = parse({**VALID, "transaction_id": "t" * 60_000}, max_bytes=65536)
    assert isinstance(out, Rejection) and out.reason == "bad_field" and "transaction_id" in out.detail


@pytest.mark.parametrize("timestamp", ["0999-12-31T23:59:59Z", "1999-12-31T23:59:59Z", "31-12-1999 23:59",
                                       "0001-01-02T00:00:00Z"])
def test_event_times_before_2000_are_rejected(timestamp):
    out = parse({**VALID, "timestamp": timestamp})
    assert isinstance(out, Rejection), out
    assert out.reason == "bad_timestamp" and "2000-01-01" in out.detail


def test_the_first_instant_of_2000_is_accepted():
    assert parse({**VALID, "timestamp": "2000-01-01T00:00:00Z"})["event_time"] == contract.MIN_EVENT_TIME
