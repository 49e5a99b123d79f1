"""JSON on the hot path with msgspec, used only where it is shown to equal the standard library's.

Each function here either returns exactly what today's `json` code returns (the same decoded
values, the same bytes) or None, and the caller then runs today's code. The fast path is taken
only inside what msgspec treats like `json`; tests/unit/core/test_fastjson.py checks it against the
standard library on generated input. What stays on the slow path, and why:

- floats outside [1e-4, 1e16): `json` writes `1e-05` and `1e+16`, msgspec `0.00001` and `1e16`;
- DEL and non-ASCII text in the fingerprint: `ensure_ascii` escapes them, msgspec writes them raw (it
  escapes the other control characters as `json` does);
- datetimes other than UTC in four-digit years (what the contract accepts anyway);
- types other than the plain JSON ones (integers of any size are written alike);
- any input msgspec refuses (NaN and Infinity tokens, lone surrogate escapes, numbers out of range,
  a BOM, malformed JSON): the standard library gives the rejection reason, so it stays the same;
- input with more brackets than MAX_BRACKETS: past its recursion limit `json` raises where msgspec
  may not, and the contract rejects such nesting anyway.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["MAX_BRACKETS", "dumps", "dumps_sorted_ascii", "exact_float", "json_default", "loads_object", "plain",
           "sorted_ascii_json", "to_json_bytes"]

MAX_BRACKETS = 64
FLOAT_LOW, FLOAT_HIGH = 1e-4, 1e16  # where float.__repr__ (what `json` writes) uses fixed notation
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_encode_sorted = msgspec.json.Encoder(order="sorted").encode


def loads_object(raw: bytes) -> dict[str, Any] | None:
    """`json.loads(raw.decode())` when that is a JSON object and msgspec reads it the same; else None.

    The caller has checked that `raw` is UTF-8 (msgspec is not asked to judge it).
    """
    if raw.count(b"[") + raw.count(b"{") > MAX_BRACKETS:
        return None
    try:
        obj = _decode(raw)
    except Exception:  # msgspec refused it: today's parser says why, in today's words
        return None
    return obj if type(obj) is dict else None


def json_default(value: Any) -> Any:
    """How the pipeline's JSON writes what `json` cannot: datetimes as UTC ISO text with `Z`."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json_bytes(doc: Mapping[str, Any], proven: bool | None = None) -> bytes:
    """A document as compact UTF-8 JSON (the enriched message): msgspec when proven the same, else `json`.

    `proven`: the caller's verdict of `plain(doc)` when it already has one (None: checked here).
    """
    fast = dumps(doc, proven)
    if fast is not None:
        return fast
    return json.dumps(doc, default=json_default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sorted_ascii_json(doc: Mapping[str, Any], proven: bool | None = None) -> bytes:
    """Compact JSON with sorted keys, ASCII-escaped (the content fingerprint's body), as `dumps_sorted_ascii`
    or `json` gives it. `proven` as in `to_json_bytes`."""
    fast = dumps_sorted_ascii(doc, proven)
    if fast is not None:
        return fast
    return json.dumps(doc, default=json_default, sort_keys=True, ensure_ascii=True,
                      separators=(",", ":")).encode("ascii")


def dumps(doc: Mapping[str, Any], proven: bool | None = None) -> bytes | None:
    """`json.dumps(doc, ensure_ascii=False, separators=(",", ":"))` as UTF-8, datetimes as UTC
    `...Z` text; None when `doc` holds anything not proven to encode the same."""
    if not (plain(doc) if proven is None else (proven and type(doc) is dict)):
        return None
    try:
        return _encode(doc)
    except Exception:  # e.g. a lone surrogate: today's encoder raises its own error
        return None


def dumps_sorted_ascii(doc: Mapping[str, Any], proven: bool | None = None) -> bytes | None:
    """The same with `sort_keys=True, ensure_ascii=True` (the content fingerprint's body), or None."""
    if not (plain(doc) if proven is None else (proven and type(doc) is dict)):
        return None
    try:
        body = _encode_sorted(doc)
    except Exception:
        return None
    # text is judged on the bytes written, in C: msgspec escapes the ASCII control characters, quotes and
    # backslashes exactly as `ensure_ascii` does, and writes the rest raw, where `json` escapes DEL and
    # everything above it. So ASCII output without DEL is json's output; anything else is left to `json`.
    return body if body.isascii() and b"\x7f" not in body else None


def exact_float(value: float) -> float | msgspec.Raw:
    """A finite float to put in a document `dumps` writes, so that it is written as `json` writes it
    (`float.__repr__`): itself inside [FLOAT_LOW, FLOAT_HIGH), else its repr as raw JSON. `json` writes
    NaN and infinity as tokens msgspec cannot: the caller keeps those on the slow path."""
    if value == 0.0 or FLOAT_LOW <= abs(value) < FLOAT_HIGH:
        return value
    return msgspec.Raw(float.__repr__(value).encode("ascii"))


def plain(doc: Mapping[str, Any]) -> bool:
    """Whether `doc` is a dict msgspec writes as `json` with the project's default hook would, text aside:
    str keys, and values that are text, booleans, None, integers, floats that `repr` writes in fixed
    notation, UTC datetimes in four-digit years, and lists and dicts of those. Text needs no look here:
    the encoders above handle it (`dumps_sorted_ascii` checks its bytes)."""
    try:
        return type(doc) is dict and _fields(doc)
    except RecursionError:  # nested past Python's limit: today's encoder says what happens
        return False


# written alike whatever they hold: text (see above), and integers of any size, since msgspec writes an
# integer's digits as `int.__str__` does and, past its digit limit, raises as `json` does
_SIMPLE = frozenset({str, int, bool, type(None)})


def _fields(doc: dict[Any, Any]) -> bool:
    # a flat loop: this runs over every field of every transaction, most of them text
    for key, value in doc.items():
        if type(key) is not str:
            return False
        kind = type(value)
        if kind in _SIMPLE:
            continue
        # a transaction's amount and time, checked here as `_value` checks them, without a call each
        if kind is float:
            if not (value == 0.0 or FLOAT_LOW <= abs(value) < FLOAT_HIGH):
                return False
        elif kind is dt.datetime:
            if not (value.tzinfo is dt.UTC and value.year >= 1000):
                return False
        elif not _value(value):
            return False
    return True


def _value(value: Any) -> bool:
    kind = type(value)
    if kind in _SIMPLE:
        return True
    if kind is float:  # NaN and the infinities fail both comparisons
        return value == 0.0 or FLOAT_LOW <= abs(value) < FLOAT_HIGH
    if kind is dt.datetime:
        # msgspec writes a UTC datetime as isoformat() with `Z` for `+00:00`, as the default hook does
        return value.tzinfo is dt.UTC and value.year >= 1000
    if kind is dict:
        return _fields(value)
    if kind is list:
        return all(map(_value, value))
    return False
