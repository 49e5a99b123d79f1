"""The data contract of transactions.raw, one rejection class at a time."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from include import schema
from include.schema import Rejection, parse_timestamp, parse_transaction

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
    ({"amount": "abc"}, schema.BAD_AMOUNT),
    ({"amount": -1}, schema.BAD_AMOUNT),
    ({"amount": True}, schema.BAD_AMOUNT),
    ({"amount": [1]}, schema.BAD_AMOUNT),
    ({"amount": "1e999"}, schema.BAD_AMOUNT),
    ({"amount": "NaN"}, schema.BAD_AMOUNT),
    ({"amount": ""}, schema.MISSING_FIELD),
    ({"user_id": ""}, schema.MISSING_FIELD),
    ({"user_id": "   "}, schema.MISSING_FIELD),
    ({"location": None}, schema.MISSING_FIELD),
    ({"user_id": {"a": 1}}, schema.BAD_FIELD),
    ({"location": 12}, schema.BAD_FIELD),
    ({"status": "pending"}, schema.BAD_FIELD),
    ({"type": "chargeback"}, schema.BAD_FIELD),
    ({"quantity": "many"}, schema.BAD_FIELD),
    ({"timestamp": "yesterday"}, schema.BAD_TIMESTAMP),
    ({"timestamp": 1727690700}, schema.BAD_TIMESTAMP),
    ({"timestamp": "31-02-2025 10:00"}, schema.BAD_TIMESTAMP),
    ({"timestamp": "2025-10-03T12:00:00Z"}, schema.FUTURE_TIMESTAMP),
    ({"$where": "1"}, schema.FORBIDDEN_KEY),
    ({"meta": {"a.b": 1}}, schema.FORBIDDEN_KEY),
    ({"meta": [{"$gt": 1}]}, schema.FORBIDDEN_KEY),
])
def test_each_rejection_class_names_its_reason(change, reason):
    result = parse({**VALID, **change})
    assert isinstance(result, Rejection), result
    assert result.reason == reason
    assert result.detail


def test_missing_field_lists_every_missing_name():
    result = parse({"transaction_id": "T1", "amount": 1})
    assert result.reason == schema.MISSING_FIELD
    for name in ("user_id", "payment_method", "location", "timestamp"):
        assert name in result.detail


@pytest.mark.parametrize(("raw", "reason"), [
    (b"\xff\xfe not utf-8", schema.NOT_UTF8),
    (b"{not json", schema.NOT_JSON),
    (b'{"amount": NaN}', schema.NOT_JSON),
    (b"[1, 2]", schema.NOT_OBJECT),
    (b'"text"', schema.NOT_OBJECT),
    (b"", schema.NOT_JSON),
])
def test_undecodable_messages(raw, reason):
    assert parse(None, raw=raw).reason == reason


def test_size_limit():
    big = {**VALID, "note": "x" * 1000}
    assert parse(big, max_bytes=500).reason == schema.TOO_LARGE
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
