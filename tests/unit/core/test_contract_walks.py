"""The contract's walks over a record (`find_unstorable`, `find_forbidden_key`) skip a call per plain
value since issue 30 (the HTTP API judges every record with them); this checks that they answer exactly
as the walks before that change, kept here verbatim as the reference, on generated records."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from txnmon.core.contract import MAX_DEPTH, find_forbidden_key, find_unstorable

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# --- the reference: the walks as they were (src/txnmon/core/contract.py before issue 30) ---------------

def ref_unstorable(value: Any, path: str = "", depth: int = 0) -> str | None:
    """Why `value` could not be stored or rolled up safely (a path and a reason), or None.

    Everything the contract accepts must survive BSON (strings encodable as UTF-8, integers
    within int64, finite floats) and MongoDB's nesting limit, whatever extra fields it carries.
    """
    where = path or "message"
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            return f"{where}: nested deeper than {MAX_DEPTH} levels"
        for key, item in value.items():
            found = _unencodable(key, f"field name {key!r}") or find_unstorable(
                item, f"{path}.{key}" if path else str(key), depth + 1)
            if found:
                return found
    elif isinstance(value, list):
        if depth >= MAX_DEPTH:
            return f"{where}: nested deeper than {MAX_DEPTH} levels"
        for i, item in enumerate(value):
            found = ref_unstorable(item, f"{path}[{i}]", depth + 1)
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


def ref_forbidden(value: Any, path: str = "") -> str | None:
    """The first key that MongoDB would read as an operator or a path: `$...` or containing `.`."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str) or key.startswith("$") or "." in key or "\x00" in key:
                return where
            found = ref_forbidden(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = ref_forbidden(item, f"{path}[{i}]")
            if found:
                return found
    return None


# --- generated records ------------------------------------------------------------------------------

KEYS = st.one_of(st.text(max_size=6), st.sampled_from(["$where", "a.b", "x\x00", "\ud800", "amount", "é"]))
LEAVES = st.one_of(
    st.none(), st.booleans(), st.text(max_size=8), st.sampled_from(["\ud800", "é", "ok\udfff"]),
    st.integers(), st.sampled_from([INT64_MIN, INT64_MAX, INT64_MAX + 1, INT64_MIN - 1]),
    st.floats(), st.sampled_from([math.inf, -math.nan]), st.datetimes(), st.binary(max_size=2),
)
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
                      max_leaves=30)


@settings(max_examples=600)
@given(st.dictionaries(KEYS, VALUES, max_size=8))
def test_the_walks_answer_as_before(record):
    assert find_unstorable(record) == ref_unstorable(record)
    assert find_forbidden_key(record) == ref_forbidden(record)


def test_deep_nesting_is_still_refused_with_the_same_words():
    deep: Any = 1
    for _ in range(MAX_DEPTH + 2):
        deep = {"k": deep}
    assert find_unstorable(deep) == ref_unstorable(deep) is not None
    assert find_unstorable({"a": [[[["\ud800"]]]]}) == ref_unstorable({"a": [[[["\ud800"]]]]}) is not None
