"""The contract's walks over a message (forbidden keys, unstorable values) give today's answers, path
and words included, now that plain fields are passed over without a call each (issue 29, item 4)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.core.test_contract_properties import json_values, transactions
from txnmon.core.contract import MAX_DEPTH, find_forbidden_key, find_unstorable

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
BUDGET = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _unencodable(text: str, where: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return f"{where}: text not encodable as UTF-8 (a lone surrogate escape)"
    return None


def unstorable_before(value: Any, path: str = "", depth: int = 0) -> str | None:
    """find_unstorable as it was before the fast walk (ec96b1b)."""
    where = path or "message"
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            return f"{where}: nested deeper than {MAX_DEPTH} levels"
        for key, item in value.items():
            found = _unencodable(key, f"field name {key!r}") or unstorable_before(
                item, f"{path}.{key}" if path else str(key), depth + 1)
            if found:
                return found
    elif isinstance(value, list):
        if depth >= MAX_DEPTH:
            return f"{where}: nested deeper than {MAX_DEPTH} levels"
        for i, item in enumerate(value):
            found = unstorable_before(item, f"{path}[{i}]", depth + 1)
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


def forbidden_before(value: Any, path: str = "") -> str | None:
    """find_forbidden_key as it was before the fast walk (ec96b1b)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str) or key.startswith("$") or "." in key or "\x00" in key:
                return where
            found = forbidden_before(item, where)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = forbidden_before(item, f"{path}[{i}]")
            if found:
                return found
    return None


odd = st.one_of(st.floats(), st.just(dt.datetime(2025, 1, 1, tzinfo=dt.UTC)), st.binary(max_size=3),
                st.sampled_from(["\ud800", "$x", "a.b", "é", 2**70, -(2**64)]))
values = st.recursive(st.one_of(json_values, odd), lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=6), st.sampled_from(
        ["$set", "a.b", "x\x00", "\udcff", "ok"])), inner, max_size=4)), max_leaves=30)


def nested(depth: int) -> dict:
    doc: dict = {"leaf": 1}
    for _ in range(depth):
        doc = {"n": doc, "s": "ok"}
    return doc


@BUDGET
@given(st.one_of(values, transactions, st.dictionaries(st.text(max_size=6), values, max_size=6)),
       st.sampled_from(["", "extra"]), st.integers(0, MAX_DEPTH + 1))
def test_the_walks_answer_as_before(value, path, depth):
    assert find_unstorable(value, path, depth) == unstorable_before(value, path, depth)
    assert find_forbidden_key(value, path) == forbidden_before(value, path)


def test_nesting_at_the_limit_is_reported_as_before():
    for depth in (MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1):
        doc = nested(depth)
        assert find_unstorable(doc) == unstorable_before(doc)
    assert find_unstorable(nested(MAX_DEPTH + 1)) is not None
