"""JSON on the hot path with msgspec, used only where it is shown to equal the standard library's.

Each function here either returns exactly what today's `json` code returns (the same decoded
values, the same bytes) or None, and the caller then runs today's code. The fast path is taken
only inside what msgspec treats like `json`; tests/unit/core/test_fastjson.py checks it against the
standard library on generated input. What stays on the slow path, and why:

- floats outside [1e-4, 1e16): `json` writes `1e-05` and `1e+16`, msgspec `0.00001` and `1e16`;
- text with control characters (and DEL) in the fingerprint: `ensure_ascii` escapes DEL, msgspec not;
  non-ASCII text there too (the fingerprint is ASCII-escaped);
- datetimes other than UTC in four-digit years (what the contract accepts anyway);
- integers outside the 64-bit range, types other than the plain JSON ones;
- any input msgspec refuses (NaN and Infinity tokens, lone surrogate escapes, numbers out of range,
  a BOM, malformed JSON): the standard library gives the rejection reason, so it stays the same;
- input with more brackets than MAX_BRACKETS: past its recursion limit `json` raises where msgspec
  may not, and the contract rejects such nesting anyway.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["MAX_BRACKETS", "dumps", "dumps_sorted_ascii", "json_default", "loads_object", "sorted_ascii_json",
           "to_json_bytes"]

MAX_BRACKETS = 64
FLOAT_LOW, FLOAT_HIGH = 1e-4, 1e16  # where float.__repr__ (what `json` writes) uses fixed notation
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
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


def to_json_bytes(doc: Mapping[str, Any]) -> bytes:
    """A document as compact UTF-8 JSON (the enriched message): msgspec when proven the same, else `json`."""
    fast = dumps(doc)
    if fast is not None:
        return fast
    return json.dumps(doc, default=json_default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def sorted_ascii_json(doc: Mapping[str, Any]) -> bytes:
    """Compact JSON with sorted keys, ASCII-escaped (the content fingerprint's body), as `dumps_sorted_ascii`
    or `json` gives it."""
    fast = dumps_sorted_ascii(doc)
    if fast is not None:
        return fast
    return json.dumps(doc, default=json_default, sort_keys=True, ensure_ascii=True,
                      separators=(",", ":")).encode("ascii")


def dumps(doc: Mapping[str, Any]) -> bytes | None:
    """`json.dumps(doc, ensure_ascii=False, separators=(",", ":"))` as UTF-8, datetimes as UTC
    `...Z` text; None when `doc` holds anything not proven to encode the same."""
    if type(doc) is not dict or not _proven(doc, ascii_only=False):
        return None
    try:
        return _encode(doc)
    except Exception:  # e.g. a lone surrogate: today's encoder raises its own error
        return None


def dumps_sorted_ascii(doc: Mapping[str, Any]) -> bytes | None:
    """The same with `sort_keys=True, ensure_ascii=True` (the content fingerprint's body), or None."""
    if type(doc) is not dict or not _proven(doc, ascii_only=True):
        return None
    try:
        return _encode_sorted(doc)
    except Exception:
        return None


def _proven(doc: dict[str, Any], ascii_only: bool) -> bool:
    try:
        return _plain(doc, ascii_only)
    except RecursionError:  # nested past Python's limit: today's encoder says what happens
        return False


def _text(value: str, ascii_only: bool) -> bool:
    # ensure_ascii escapes DEL and everything above it; msgspec writes them as they are
    return not ascii_only or (value.isascii() and value.isprintable())


def _plain(value: Any, ascii_only: bool) -> bool:
    """Whether msgspec writes `value` exactly as `json` with the project's default hook would."""
    kind = type(value)
    if kind is str:
        return _text(value, ascii_only)
    if kind is float:
        magnitude = abs(value)
        return math.isfinite(value) and (magnitude == 0.0 or FLOAT_LOW <= magnitude < FLOAT_HIGH)
    if kind is int:
        return INT64_MIN <= value <= INT64_MAX
    if kind is bool or value is None:
        return True
    if kind is dict:
        for key, item in value.items():  # a loop with text inline: this runs per field of every transaction
            if type(key) is not str or (ascii_only and not (key.isascii() and key.isprintable())):
                return False
            if type(item) is str:
                if ascii_only and not (item.isascii() and item.isprintable()):
                    return False
            elif not _plain(item, ascii_only):
                return False
        return True
    if kind is list:
        return all(_plain(item, ascii_only) for item in value)
    if kind is dt.datetime:
        # msgspec writes a UTC datetime as isoformat() with `Z` for `+00:00`, as the default hook does
        return value.tzinfo is dt.UTC and value.year >= 1000
    return False
