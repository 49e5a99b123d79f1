"""The data contract of `transactions.raw`: parse one message into a clean transaction, or say why not.

Pure functions, no I/O and no clock: the caller passes `now` and the zone for naive times, so the
processor, the replay's file check and offline analysis all judge a message the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

REQUIRED_FIELDS = ("transaction_id", "user_id", "amount", "payment_method", "location", "timestamp")
OPTIONAL_FIELDS = ("product", "category", "quantity", "country", "currency", "status", "type")
STATUSES = frozenset({"success", "failed"})
TYPES = frozenset({"purchase", "refund"})
MAX_FUTURE = dt.timedelta(days=1)
UTC = dt.UTC

# Reason codes: stable identifiers for DLQ records, metrics and `txnmon dlq --reason`.
TOO_LARGE = "too_large"
NOT_UTF8 = "not_utf8"
NOT_JSON = "not_json"
NOT_OBJECT = "not_object"
FORBIDDEN_KEY = "forbidden_key"
MISSING_FIELD = "missing_field"
BAD_FIELD = "bad_field"
BAD_AMOUNT = "bad_amount"
BAD_TIMESTAMP = "bad_timestamp"
FUTURE_TIMESTAMP = "future_timestamp"
REJECTION_REASONS = (TOO_LARGE, NOT_UTF8, NOT_JSON, NOT_OBJECT, FORBIDDEN_KEY, MISSING_FIELD, BAD_FIELD,
                     BAD_AMOUNT, BAD_TIMESTAMP, FUTURE_TIMESTAMP)

_NAIVE_FORMATS = ("%d-%m-%Y %H:%M", "%d-%m-%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S")


@dataclass(frozen=True)
class Rejection:
    """Why a message is not a valid transaction. `reason` is a code, `detail` is for humans."""

    reason: str
    detail: str


class InvalidTransaction(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.rejection = Rejection(reason, detail)


def parse_timestamp(value: Any, zone: ZoneInfo) -> dt.datetime:
    """Read a timestamp in any accepted form and return it as an aware UTC datetime.

    Accepted: ISO-8601 with or without zone (`2025-09-30T14:32:00Z`, `2025-09-30 14:32`),
    and the seed's day-first `30-09-2025 10:05`. Naive times are read in `zone`.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidTransaction(BAD_TIMESTAMP, f"timestamp must be a non-empty string, got {value!r}")
    text = value.strip()
    parsed: dt.datetime | None = None
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        for fmt in _NAIVE_FORMATS:
            try:
                parsed = dt.datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        raise InvalidTransaction(BAD_TIMESTAMP, f"unrecognised timestamp {text!r}")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def parse_amount(value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidTransaction(BAD_AMOUNT, f"amount must be a number, got {value!r}")
    if isinstance(value, int | float):
        amount = float(value)
    elif isinstance(value, str):
        try:
            amount = float(value.strip().replace(",", "")) if value.strip() else math.nan
        except ValueError:
            raise InvalidTransaction(BAD_AMOUNT, f"amount is not numeric: {value!r}") from None
        if not value.strip():
            raise InvalidTransaction(MISSING_FIELD, "amount is empty")
    else:
        raise InvalidTransaction(BAD_AMOUNT, f"amount must be a number, got {type(value).__name__}")
    if not math.isfinite(amount):
        raise InvalidTransaction(BAD_AMOUNT, f"amount must be finite, got {value!r}")
    if amount < 0:
        raise InvalidTransaction(BAD_AMOUNT, f"amount must be >= 0, got {value!r}")
    return amount


def _identifier(name: str, value: Any) -> str:
    if isinstance(value, bool):
        raise InvalidTransaction(BAD_FIELD, f"{name} must be a string, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 7.0 from a spreadsheet export is transaction 7
    if isinstance(value, str):
        return value.strip()
    raise InvalidTransaction(BAD_FIELD, f"{name} must be a string, got {type(value).__name__}")


def find_forbidden_key(value: Any, path: str = "") -> str | None:
    """The first key that MongoDB would read as an operator or a path: `$...` or containing `.`."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str) or key.startswith("$") or "." in key or "\x00" in key:
                return where
            found = find_forbidden_key(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = find_forbidden_key(item, f"{path}[{i}]")
            if found:
                return found
    return None


def _reject_nonfinite(token: str) -> float:
    raise ValueError(f"{token} is not valid JSON")


def decode_message(raw: bytes, max_bytes: int) -> dict[str, Any]:
    """Bytes off the wire to a JSON object, or InvalidTransaction."""
    if len(raw) > max_bytes:
        raise InvalidTransaction(TOO_LARGE, f"message is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidTransaction(NOT_UTF8, f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        obj = json.loads(text, parse_constant=_reject_nonfinite)
    except (ValueError, RecursionError) as exc:
        raise InvalidTransaction(NOT_JSON, f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidTransaction(NOT_OBJECT, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def normalise(obj: Mapping[str, Any], *, zone: ZoneInfo, now: dt.datetime) -> dict[str, Any]:
    """Validate a decoded object against the contract; return the normalised transaction.

    The result has `_id` = transaction_id, a float `amount`, an aware UTC `event_time`, the
    original `timestamp` text, the optional fields when present, and unknown fields unchanged.
    """
    bad_key = find_forbidden_key(obj)
    if bad_key is not None:
        raise InvalidTransaction(FORBIDDEN_KEY, f"field name {bad_key!r} is not allowed ($-prefix or '.')")
    missing = [f for f in REQUIRED_FIELDS if obj.get(f) is None or (isinstance(obj.get(f), str)
                                                                    and not obj[f].strip())]
    if missing:
        raise InvalidTransaction(MISSING_FIELD, f"missing or empty: {', '.join(missing)}")

    tx: dict[str, Any] = {k: v for k, v in obj.items() if k not in REQUIRED_FIELDS}
    tx["transaction_id"] = _identifier("transaction_id", obj["transaction_id"])
    tx["user_id"] = _identifier("user_id", obj["user_id"])
    for name in ("transaction_id", "user_id"):
        if not tx[name]:
            raise InvalidTransaction(MISSING_FIELD, f"missing or empty: {name}")
    for name in ("payment_method", "location"):
        value = obj[name]
        if not isinstance(value, str):
            raise InvalidTransaction(BAD_FIELD, f"{name} must be a string, got {type(value).__name__}")
        tx[name] = value.strip()
    tx["amount"] = parse_amount(obj["amount"])
    tx["timestamp"] = obj["timestamp"]
    event_time = parse_timestamp(obj["timestamp"], zone)
    if event_time > now + MAX_FUTURE:
        raise InvalidTransaction(FUTURE_TIMESTAMP, f"timestamp {obj['timestamp']!r} is more than a day ahead")
    tx["event_time"] = event_time

    for name in ("status", "type"):
        if name in tx and tx[name] is not None:
            value = str(tx[name]).strip().lower()
            allowed = STATUSES if name == "status" else TYPES
            if value not in allowed:
                raise InvalidTransaction(BAD_FIELD, f"{name} must be one of {sorted(allowed)}, got {tx[name]!r}")
            tx[name] = value
    if tx.get("quantity") is not None:
        try:
            qty = float(tx["quantity"])
        except (TypeError, ValueError):
            raise InvalidTransaction(BAD_FIELD, f"quantity must be a number, got {tx['quantity']!r}") from None
        if not math.isfinite(qty) or qty < 0:
            raise InvalidTransaction(BAD_FIELD, f"quantity must be finite and >= 0, got {tx['quantity']!r}")
        tx["quantity"] = int(qty) if qty.is_integer() else qty
    tx["_id"] = tx["transaction_id"]
    return tx


def parse_transaction(raw: bytes, *, zone: ZoneInfo, now: dt.datetime, max_bytes: int) -> dict[str, Any] | Rejection:
    """One message to a transaction dict, or the Rejection that sends it to the DLQ."""
    try:
        return normalise(decode_message(raw, max_bytes), zone=zone, now=now)
    except InvalidTransaction as exc:
        return exc.rejection
