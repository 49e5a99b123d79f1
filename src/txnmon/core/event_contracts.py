"""The data contracts of the other event kinds: cart events (`carts.raw`), stock events
(`inventory.raw`) and reviews (`reviews.raw`); parse one message, or say why not.

Each kind judges a message the way the transaction contract (src/txnmon/core/contract.py) does,
with its helpers and its rejection reasons: bytes too large, not UTF-8, not a JSON object, a `$` or
`.` in a field name, a missing field, ids and texts bounded, times within 2000 .. now + 1 day,
everything kept storable in BSON. Unknown fields are kept unchanged. Pure: `now` and the zone for
naive times come in. `EVENT_KINDS` is the registry by kind, transactions included.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from txnmon.core import contract
from txnmon.core.contract import (
    MAX_FUTURE,
    MAX_ID_CHARS,
    MAX_QUANTITY,
    MAX_TEXT_CHARS,
    MIN_EVENT_TIME,
    InvalidTransaction,
    decode_message,
    find_forbidden_key,
    find_unstorable,
    parse_amount,
    parse_timestamp,
)
from txnmon.core.records import (
    BAD_FIELD,
    BAD_TIMESTAMP,
    FORBIDDEN_KEY,
    FUTURE_TIMESTAMP,
    MISSING_FIELD,
    Rejection,
)
from txnmon.errors import UsageError

__all__ = ["CART_EVENT_TYPES", "EVENT_KINDS", "MAX_REVIEW_CHARS", "EventKind", "InvalidEvent", "event_kind",
           "normalise_cart_event", "normalise_review", "normalise_stock_event", "parse_cart_event",
           "parse_review", "parse_stock_event"]

# One error for every contract: the DLQ record's reason and detail are read from its `rejection`.
InvalidEvent = InvalidTransaction

CART_EVENT_TYPES = ("cart_created", "item_added", "item_removed", "checkout_started")
ITEM_EVENT_TYPES = frozenset({"item_added", "item_removed"})  # these name a product, a quantity and a price
MAX_REVIEW_CHARS = 5000  # a review's text: long enough for any honest review, bounded for every copy of it
MAX_STOCK = MAX_QUANTITY  # units on hand or moved at once, like a transaction's quantity
RATINGS = range(1, 6)

Normaliser = Callable[..., dict[str, Any]]


def _missing(obj: Mapping[str, Any], names: tuple[str, ...]) -> list[str]:
    return [f for f in names if obj.get(f) is None or (isinstance(obj.get(f), str) and not obj[f].strip())]


def _require(obj: Mapping[str, Any], names: tuple[str, ...]) -> None:
    missing = _missing(obj, names)
    if missing:
        raise InvalidEvent(MISSING_FIELD, f"missing or empty: {', '.join(missing)}")


def _check_keys(obj: Mapping[str, Any]) -> None:
    bad_key = find_forbidden_key(obj)
    if bad_key is not None:
        raise InvalidEvent(FORBIDDEN_KEY, f"field name {bad_key!r} is not allowed ($-prefix or '.')")


def _ident(name: str, value: Any, limit: int = MAX_ID_CHARS) -> str:
    """An id or short text as the transaction contract reads one (7.0 is "7"), within `limit` characters."""
    text = contract._identifier(name, value)
    if len(text) > limit:
        raise InvalidEvent(BAD_FIELD, f"{name} is {len(text)} characters long, the limit is {limit}")
    if not text:
        raise InvalidEvent(MISSING_FIELD, f"missing or empty: {name}")
    return text


def _event_time(value: Any, zone: ZoneInfo, now: dt.datetime) -> dt.datetime:
    event_time = parse_timestamp(value, zone)
    if event_time > now + MAX_FUTURE:
        raise InvalidEvent(FUTURE_TIMESTAMP, f"timestamp {value!r} is more than a day ahead")
    if event_time < MIN_EVENT_TIME:
        raise InvalidEvent(BAD_TIMESTAMP, f"timestamp {value!r} is before {MIN_EVENT_TIME:%Y-%m-%d}, "
                                          "the earliest event time accepted")
    return event_time


def _whole(name: str, value: Any, *, low: float, high: float) -> int:
    """A whole number of units (`3`, `3.0`, `"3"`) within [low, high]; the detail names the field."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidEvent(BAD_FIELD, f"{name} must be a whole number, got {type(value).__name__}")
    try:
        number = float(value.strip()) if isinstance(value, str) else float(value)
    except (ValueError, OverflowError):
        raise InvalidEvent(BAD_FIELD, f"{name} must be a whole number, got {str(value)[:40]!r}") from None
    if not math.isfinite(number) or not number.is_integer() or not low <= number <= high:
        raise InvalidEvent(BAD_FIELD, f"{name} must be a whole number between {low:g} and {high:g}, "
                                      f"got {str(value)[:40]!r}")
    return int(number)


def _price(value: Any) -> float:
    """A price is money: the transaction contract's amount rules, with the detail naming `price`."""
    try:
        return parse_amount(value)
    except InvalidEvent as exc:
        raise InvalidEvent(exc.rejection.reason, exc.rejection.detail.replace("amount", "price", 1)) from None


def _present(event: dict[str, Any], name: str) -> bool:
    """Whether an optional field is given; an empty one is dropped, as a replayed CSV drops empty cells."""
    if _missing(event, (name,)):
        if isinstance(event.get(name), str):
            del event[name]
        return False
    return True


def _optional_texts(event: dict[str, Any], names: tuple[str, ...], limit: int = MAX_TEXT_CHARS) -> None:
    for name in names:
        if _present(event, name):
            event[name] = _ident(name, event[name], limit)


def _finish(event: dict[str, Any], id_field: str) -> dict[str, Any]:
    unstorable = find_unstorable(event)
    if unstorable is not None:
        raise InvalidEvent(BAD_FIELD, unstorable)
    event["_id"] = event[id_field]
    return event


def normalise_cart_event(obj: Mapping[str, Any], *, zone: ZoneInfo, now: dt.datetime) -> dict[str, Any]:
    """A cart event: `event_id`, `event_type` (one of CART_EVENT_TYPES), `user_id`, `cart_id` or
    `session_id` (at least one), `timestamp`; item events also `product_id`, `quantity` (>= 1) and
    `price`; optional `currency` and `source`. `_id` is the event id, `event_time` aware UTC."""
    _check_keys(obj)
    _require(obj, ("event_id", "event_type", "user_id", "timestamp"))
    if _missing(obj, ("cart_id",)) and _missing(obj, ("session_id",)):
        raise InvalidEvent(MISSING_FIELD, "missing or empty: cart_id or session_id")
    event: dict[str, Any] = dict(obj)
    for name in ("event_id", "user_id"):
        event[name] = _ident(name, obj[name])
    kind = obj["event_type"]
    if not isinstance(kind, str) or kind.strip().lower() not in CART_EVENT_TYPES:
        raise InvalidEvent(BAD_FIELD, f"event_type must be one of {list(CART_EVENT_TYPES)}, got {str(kind)[:40]!r}")
    event["event_type"] = kind.strip().lower()
    for name in ("cart_id", "session_id"):
        if _missing(obj, (name,)):
            event.pop(name, None)  # an empty one of the two says nothing; the other names the cart
        else:
            event[name] = _ident(name, obj[name])
    if event["event_type"] in ITEM_EVENT_TYPES:
        _require(obj, ("product_id", "quantity", "price"))
    _optional_texts(event, ("product_id",), MAX_ID_CHARS)
    if _present(event, "quantity"):
        event["quantity"] = _whole("quantity", event["quantity"], low=1, high=MAX_QUANTITY)
    if _present(event, "price"):
        event["price"] = _price(event["price"])
    _optional_texts(event, ("currency", "source"))
    event["event_time"] = _event_time(obj["timestamp"], zone, now)
    return _finish(event, "event_id")


def normalise_stock_event(obj: Mapping[str, Any], *, zone: ZoneInfo, now: dt.datetime) -> dict[str, Any]:
    """A stock event: `event_id`, `product_id`, `location` or `warehouse` (at least one; `location`
    is set to the warehouse when only that is given), exactly one of `quantity_on_hand` (a count,
    >= 0) and `delta` (a change, + or -), `timestamp`, `source`."""
    _check_keys(obj)
    _require(obj, ("event_id", "product_id", "timestamp", "source"))
    places = [name for name in ("location", "warehouse") if not _missing(obj, (name,))]
    if not places:
        raise InvalidEvent(MISSING_FIELD, "missing or empty: location or warehouse")
    counts = [name for name in ("quantity_on_hand", "delta") if not _missing(obj, (name,))]
    if not counts:
        raise InvalidEvent(MISSING_FIELD, "missing or empty: quantity_on_hand or delta")
    if len(counts) == 2:
        raise InvalidEvent(BAD_FIELD, "quantity_on_hand and delta: give one of them, not both")
    event: dict[str, Any] = {k: v for k, v in obj.items() if k not in ("quantity_on_hand", "delta")}
    for name in ("event_id", "product_id"):
        event[name] = _ident(name, obj[name])
    for name in ("location", "warehouse"):
        if name in places:
            event[name] = _ident(name, obj[name], MAX_TEXT_CHARS)
        else:
            event.pop(name, None)
    event.setdefault("location", event.get("warehouse"))
    name = counts[0]
    low = 0 if name == "quantity_on_hand" else -MAX_STOCK
    event[name] = _whole(name, obj[name], low=low, high=MAX_STOCK)
    event["source"] = _ident("source", obj["source"], MAX_TEXT_CHARS)
    event["event_time"] = _event_time(obj["timestamp"], zone, now)
    return _finish(event, "event_id")


def normalise_review(obj: Mapping[str, Any], *, zone: ZoneInfo, now: dt.datetime) -> dict[str, Any]:
    """A review: `review_id`, `user_id`, `product_id`, `rating` (a whole number 1-5), `text` (at most
    MAX_REVIEW_CHARS characters), `timestamp`; optional `transaction_id` and `source`."""
    _check_keys(obj)
    _require(obj, ("review_id", "user_id", "product_id", "rating", "text", "timestamp"))
    event: dict[str, Any] = dict(obj)
    for name in ("review_id", "user_id", "product_id"):
        event[name] = _ident(name, obj[name])
    event["rating"] = _whole("rating", obj["rating"], low=RATINGS.start, high=RATINGS.stop - 1)
    text = obj["text"]
    if not isinstance(text, str):
        raise InvalidEvent(BAD_FIELD, f"text must be a string, got {type(text).__name__}")
    if len(text) > MAX_REVIEW_CHARS:
        raise InvalidEvent(BAD_FIELD, f"text is {len(text)} characters long, the limit is {MAX_REVIEW_CHARS}")
    event["text"] = text.strip()
    _optional_texts(event, ("transaction_id",), MAX_ID_CHARS)
    _optional_texts(event, ("source",))
    event["event_time"] = _event_time(obj["timestamp"], zone, now)
    return _finish(event, "review_id")


def _parser(normalise: Normaliser) -> Callable[..., dict[str, Any] | Rejection]:
    def parse(raw: bytes, *, zone: ZoneInfo, now: dt.datetime, max_bytes: int) -> dict[str, Any] | Rejection:
        try:
            return normalise(decode_message(raw, max_bytes), zone=zone, now=now)
        except InvalidEvent as exc:
            return exc.rejection

    parse.__doc__ = f"One message to a normalised event ({normalise.__name__}), or the Rejection for the DLQ."
    return parse


parse_cart_event = _parser(normalise_cart_event)
parse_stock_event = _parser(normalise_stock_event)
parse_review = _parser(normalise_review)


@dataclass(frozen=True)
class EventKind:
    """One kind of event: its contract, the columns a replay file must have, what keys its messages,
    which numeric columns a CSV row carries as numbers, and the Settings field naming its topic."""

    name: str
    normalise: Normaliser
    parse: Callable[..., dict[str, Any] | Rejection]
    columns: tuple[str, ...]
    key_field: str
    numeric: tuple[str, ...]
    topic_setting: str


EVENT_KINDS: dict[str, EventKind] = {
    "transactions": EventKind("transactions", contract.normalise, contract.parse_transaction, contract.REQUIRED_FIELDS,
                              "user_id", ("amount", "quantity"), "topic_raw"),
    # carts: keyed by user, so a user's cart events and purchases can meet on one partition number
    "carts": EventKind("carts", normalise_cart_event, parse_cart_event,
                       ("event_id", "event_type", "user_id", "timestamp"), "user_id", ("quantity", "price"),
                       "topic_carts"),
    # stock and reviews: keyed by product, so one product's levels (or sentiment) stay in order
    "stock": EventKind("stock", normalise_stock_event, parse_stock_event, ("event_id", "product_id", "timestamp",
                                                                           "source"),
                       "product_id", ("quantity_on_hand", "delta"), "topic_inventory"),
    "reviews": EventKind("reviews", normalise_review, parse_review,
                         ("review_id", "user_id", "product_id", "rating", "text", "timestamp"), "product_id",
                         ("rating",), "topic_reviews"),
}


def event_kind(name: str) -> EventKind:
    """The registry's entry for `name`, or UsageError naming the kinds there are."""
    try:
        return EVENT_KINDS[name]
    except KeyError:
        raise UsageError(f"unknown event kind {name!r}; one of {', '.join(EVENT_KINDS)}") from None

