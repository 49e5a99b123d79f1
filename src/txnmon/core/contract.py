"""The data contract of `transactions.raw`: parse one message into a clean transaction, or say why not.

Pure functions, no I/O and no clock: the caller passes `now` and the zone for naive times, so the
processor, the replay's file check and offline analysis all judge a message the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from txnmon.core.fastjson import loads_object
from txnmon.core.records import (
    BAD_AMOUNT,
    BAD_FIELD,
    BAD_TIMESTAMP,
    FORBIDDEN_KEY,
    FUTURE_TIMESTAMP,
    MISSING_FIELD,
    NOT_JSON,
    NOT_OBJECT,
    NOT_UTF8,
    REJECTION_REASONS,
    TOO_LARGE,
    Rejection,
)
from txnmon.errors import TxnmonError

__all__ = ["REJECTION_REASONS", "InvalidTransaction", "Rejection", "normalise", "parse_amount", "parse_timestamp",
           "parse_transaction"]

REQUIRED_FIELDS = ("transaction_id", "user_id", "amount", "payment_method", "location", "timestamp")
OPTIONAL_FIELDS = ("product", "category", "quantity", "country", "currency", "status", "type")
STATUSES = frozenset({"success", "failed"})
TYPES = frozenset({"purchase", "refund"})
TEXT_FIELDS = ("product", "category", "country", "currency")  # rollup keys: must be text
MAX_FUTURE = dt.timedelta(days=1)
# The earliest event time accepted: older dates are typos or hostile (year 999 breaks every "%Y" key
# downstream); with MAX_FUTURE it keeps every event time within four-digit years.
MIN_EVENT_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
# Text bounds: every field the pipeline copies into other documents (alerts list transaction ids,
# cases list alert ids, the user state packs ids and places) stays small, so no derived document can
# outgrow MongoDB's 16 MiB or a Kafka record (a 60 KB id counted by 180 alerts made a 21 MB alert).
MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 256
ID_FIELDS = ("transaction_id", "user_id", "product")
# Bounds that keep every accepted transaction safe for every later step: sums of amounts stay
# finite and exact to the cent over any realistic stream, documents nest well inside MongoDB's
# limit (100 levels, and txnmon wraps the input once), integers fit BSON's int64.
MAX_AMOUNT = 1e12
MAX_QUANTITY = 1e9
MAX_DEPTH = 20
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UTC = dt.UTC

_NAIVE_FORMATS = ("%d-%m-%Y %H:%M", "%d-%m-%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S")


class InvalidTransaction(TxnmonError, ValueError):
    """A message breaks the contract; `rejection` says why (the DLQ record's reason and detail)."""

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
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        # e.g. 0001-01-01T00:30+01:00 is before the first representable UTC instant
        raise InvalidTransaction(BAD_TIMESTAMP, f"timestamp {text!r} is outside the representable range") from None


def parse_amount(value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidTransaction(BAD_AMOUNT, f"amount must be a number, got {value!r}")
    if isinstance(value, int | float):
        try:
            amount = float(value)
        except OverflowError:
            raise InvalidTransaction(BAD_AMOUNT, f"amount {str(value)[:40]}... is too large") from None
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
    if amount > MAX_AMOUNT:
        raise InvalidTransaction(BAD_AMOUNT, f"amount {amount:g} is above the contract's maximum {MAX_AMOUNT:g}")
    return amount


def _bounded(name: str, text: str) -> str:
    limit = MAX_ID_CHARS if name in ID_FIELDS else MAX_TEXT_CHARS
    if len(text) > limit:
        raise InvalidTransaction(BAD_FIELD, f"{name} is {len(text)} characters long, the limit is {limit}")
    return text


def _identifier(name: str, value: Any) -> str:
    if isinstance(value, bool):
        raise InvalidTransaction(BAD_FIELD, f"{name} must be a string, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 7.0 from a spreadsheet export is transaction 7
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise InvalidTransaction(BAD_FIELD, f"{name} is a number too large for an identifier")
        return str(value)
    if isinstance(value, str):
        return _bounded(name, value.strip())
    raise InvalidTransaction(BAD_FIELD, f"{name} must be a string, got {type(value).__name__}")


def _plain(item: Any) -> bool:
    """True for a value that is storable as it is (most of a record's values): checked inline, so the
    walks below skip a call per value; anything else goes through the full check."""
    kind = type(item)
    return ((kind is str and item.isascii()) or kind is bool or item is None
            or (kind is float and math.isfinite(item)) or (kind is int and INT64_MIN <= item <= INT64_MAX))


def find_unstorable(value: Any, path: str = "", depth: int = 0) -> str | None:
    """Why `value` could not be stored or rolled up safely (a path and a reason), or None.

    Everything the contract accepts must survive BSON (strings encodable as UTF-8, integers
    within int64, finite floats) and MongoDB's nesting limit, whatever extra fields it carries.
    """
    where = path or "message"
    if type(value) is dict or isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            return f"{where}: nested deeper than {MAX_DEPTH} levels"
        for key, item in value.items():
            if not (type(key) is str and key.isascii()):  # ASCII text is always UTF-8
                found = _unencodable(key, f"field name {key!r}")
                if found:
                    return found
            if _plain(item):
                continue
            found = find_unstorable(item, f"{path}.{key}" if path else str(key), depth + 1)
            if found:
                return found
    elif isinstance(value, list):
        if depth >= MAX_DEPTH:
            return f"{where}: nested deeper than {MAX_DEPTH} levels"
        for i, item in enumerate(value):
            found = None if _plain(item) else find_unstorable(item, f"{path}[{i}]", depth + 1)
            if found:
                return found
    elif isinstance(value, str):
        return _unencodable(value, where)
    elif isinstance(value, bool | dt.datetime) or value is None:
        return None
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            return f"{where}: integer outside the 64-bit range"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return f"{where}: number is not finite"
    else:
        return f"{where}: unsupported type {type(value).__name__}"
    return None


def _unencodable(text: str, where: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"{where}: text not encodable as UTF-8 (a lone surrogate escape)"
    return None


_LEAVES = (str, int, float, bool, type(None))


def find_forbidden_key(value: Any, path: str = "") -> str | None:
    """The first key that MongoDB would read as an operator or a path: `$...` or containing `.`."""
    if type(value) is dict or isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("$") or "." in key or "\x00" in key:
                return f"{path}.{key}" if path else str(key)
            if type(item) in _LEAVES:  # no key below a plain value: no path to build, no call
                continue
            found = find_forbidden_key(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = None if type(item) in _LEAVES else find_forbidden_key(item, f"{path}[{i}]")
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
    fast = loads_object(raw)  # the same object, faster; None for anything unusual, judged below as before
    if fast is not None:
        return fast
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
    fast = normalise_flat(obj, zone=zone, now=now)
    return fast if fast is not None else normalise_checked(obj, zone=zone, now=now)


_FLAT_TEXT, _TEXT_LIMITS = (tuple((name, MAX_ID_CHARS if name in ID_FIELDS else MAX_TEXT_CHARS) for name in names)
                             for names in (("transaction_id", "user_id", "payment_method", "location"), TEXT_FIELDS))


def normalise_flat(obj: Mapping[str, Any], *, zone: ZoneInfo, now: dt.datetime) -> dict[str, Any] | None:
    """`normalise_checked(obj)` for the common record, or None when it is not one (then that runs).

    Common: a dict of plain scalars (ASCII text, bool, None, finite floats, 64-bit integers) under ASCII
    names with no `$`, `.` or NUL, text or integer ids, a numeric amount and quantity, nothing the contract
    rejects: nothing to walk into, and all it derives is storable, so one pass replaces both walks. Any
    doubt and every rejection go to `normalise_checked`, which alone words the reasons (issue 29).
    """
    if type(obj) is not dict:
        return None
    try:
        names = "".join(obj)  # every name at once: stricter than find_forbidden_key (a `$` anywhere)
    except TypeError:
        return None
    if not names.isascii() or "$" in names or "." in names or "\x00" in names:
        return None
    for value in obj.values():  # the test of `_plain`, inline: a call per field is what this saves
        kind = type(value)
        if kind is str:
            if value.isascii():
                continue
            return None
        if not (kind is bool or value is None or (kind is float and math.isfinite(value))
                or (kind is int and INT64_MIN <= value <= INT64_MAX)):
            return None
    found = []
    for name, limit in _FLAT_TEXT:
        value = obj.get(name)
        if type(value) is int and name in ID_FIELDS:  # an id as a number: its range was checked above
            value = str(value)
        elif type(value) is not str or not (value := value.strip()) or len(value) > limit:
            return None
        found.append(value)
    amount, text = obj.get("amount"), obj.get("timestamp")
    if (type(amount) is not float and type(amount) is not int) or not 0 <= (amount := float(amount)) <= MAX_AMOUNT \
            or type(text) is not str:
        return None
    try:
        event_time = parse_timestamp(text, zone)
    except InvalidTransaction:
        return None
    if not MIN_EVENT_TIME <= event_time <= now + MAX_FUTURE:
        return None
    tx = obj.copy()  # as `normalise_checked` builds it: the other fields in their order, then these
    for name in REQUIRED_FIELDS:
        del tx[name]
    tx["transaction_id"], tx["user_id"], tx["payment_method"], tx["location"] = found
    tx["amount"], tx["timestamp"], tx["event_time"] = amount, text, event_time
    for name, allowed in (("status", STATUSES), ("type", TYPES)):
        if (value := tx.get(name)) is not None:
            if (value := str(value).strip().lower()) not in allowed:
                return None
            tx[name] = value
    for name, limit in _TEXT_LIMITS:
        if (value := tx.get(name)) is not None:
            if type(value) is int:  # a product code as a number, as `_identifier` reads it
                value = str(value)
            elif type(value) is not str or len(value := value.strip()) > limit:
                return None
            tx[name] = value
    if (quantity := tx.get("quantity")) is not None:
        kind = type(quantity)
        if (kind is not int and kind is not float) or not 0 <= (qty := float(quantity)) <= MAX_QUANTITY:
            return None
        tx["quantity"] = int(qty) if qty.is_integer() else qty
    tx["_id"] = tx["transaction_id"]
    return tx


def normalise_checked(obj: Mapping[str, Any], *, zone: ZoneInfo, now: dt.datetime) -> dict[str, Any]:
    """`normalise` with every check, in the contract's order: the reference `normalise_flat` must equal."""
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
        tx[name] = _bounded(name, value.strip())
    tx["amount"] = parse_amount(obj["amount"])
    tx["timestamp"] = obj["timestamp"]
    event_time = parse_timestamp(obj["timestamp"], zone)
    if event_time > now + MAX_FUTURE:
        raise InvalidTransaction(FUTURE_TIMESTAMP, f"timestamp {obj['timestamp']!r} is more than a day ahead")
    if event_time < MIN_EVENT_TIME:
        raise InvalidTransaction(BAD_TIMESTAMP, f"timestamp {obj['timestamp']!r} is before "
                                                f"{MIN_EVENT_TIME:%Y-%m-%d}, the earliest event time accepted")
    tx["event_time"] = event_time

    for name in ("status", "type"):
        if name in tx and tx[name] is not None:
            value = str(tx[name]).strip().lower()
            allowed = STATUSES if name == "status" else TYPES
            if value not in allowed:
                raise InvalidTransaction(BAD_FIELD, f"{name} must be one of {sorted(allowed)}, got {tx[name]!r}")
            tx[name] = value
    for name in TEXT_FIELDS:
        if tx.get(name) is not None:
            tx[name] = _identifier(name, tx[name])
    if tx.get("quantity") is not None:
        if isinstance(tx["quantity"], bool | dict | list):
            raise InvalidTransaction(BAD_FIELD, f"quantity must be a number, got {type(tx['quantity']).__name__}")
        try:
            qty = float(tx["quantity"])
        except (TypeError, ValueError, OverflowError):
            raise InvalidTransaction(BAD_FIELD,
                                     f"quantity must be a number, got {str(tx['quantity'])[:40]!r}") from None
        if not math.isfinite(qty) or not 0 <= qty <= MAX_QUANTITY:
            raise InvalidTransaction(BAD_FIELD, f"quantity must be between 0 and {MAX_QUANTITY:g}, "
                                                f"got {str(tx['quantity'])[:40]!r}")
        tx["quantity"] = int(qty) if qty.is_integer() else qty
    unstorable = find_unstorable(tx)
    if unstorable is not None:
        raise InvalidTransaction(BAD_FIELD, unstorable)
    tx["_id"] = tx["transaction_id"]
    return tx


def parse_transaction(raw: bytes, *, zone: ZoneInfo, now: dt.datetime, max_bytes: int) -> dict[str, Any] | Rejection:
    """One message to a transaction dict, or the Rejection that sends it to the DLQ."""
    try:
        return normalise(decode_message(raw, max_bytes), zone=zone, now=now)
    except InvalidTransaction as exc:
        return exc.rejection
