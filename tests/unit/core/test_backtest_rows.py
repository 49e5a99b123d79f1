"""A backtest reads a CSV row's amount and quantity as numbers before the contract (issue 29): the same
transaction, or the same rejection with the same reason, as the contract's full checks on the text."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from txnmon.core import contract
from txnmon.core.backtest import normalise_rows, read_numbers
from txnmon.core.contract import InvalidTransaction, normalise, normalise_checked

ZONE = ZoneInfo("Europe/Berlin")
NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)

number_text = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-10, max_value=10**14).map(str),
    st.decimals(min_value=0, max_value=10**6, places=2).map(str),
    st.sampled_from(["", " ", "12.50", " 7 ", "1,234.56", "1_000", "abc", "1e13", "1e-400", "-0", "NaN", "inf",
                     "0x10", "2.0", "3.5", "1e9", "1000000001"]),
)
wild_text = st.one_of(st.text(max_size=12), st.sampled_from(["", "  ", "Zürich", "a.b", "$x"]))
stamp = st.sampled_from(["2026-12-01T10:00:00Z", "2026-12-01 10:00:00", "2026-12-01T10:00:00.123456789+01:00",
                         "2026-12-08T10:00:00Z", "yesterday", "1999-01-01T00:00:00Z"])


def mostly(draw: Any, usual: list[str], wild: Any) -> str:
    """A usual value nine times in ten: most rows get as far as the amount and quantity checks."""
    return draw(wild) if draw(st.integers(0, 9)) == 0 else draw(st.sampled_from(usual))


@st.composite
def csv_rows(draw: Any) -> dict[str, Any]:
    row = {"transaction_id": mostly(draw, ["t1", "T-99"], wild_text), "user_id": mostly(draw, ["u1", "7"], wild_text),
           "amount": draw(number_text), "timestamp": mostly(draw, ["2026-12-01T10:00:00Z"], stamp),
           "payment_method": mostly(draw, ["card", "paypal"], wild_text),
           "location": mostly(draw, ["Berlin, DE", "Zürich"], wild_text)}
    if draw(st.booleans()):
        row["quantity"] = draw(number_text)
    for name in draw(st.lists(st.sampled_from(["status", "type", "product", "fraud_label"]), unique=True)):
        row[name] = mostly(draw, ["completed", "purchase", "p-1"], st.sampled_from(["failed", "refund", "", "Weird"]))
    order = draw(st.permutations(list(row)))
    return {k: row[k] for k in order}


def outcome(make: Any, row: dict[str, Any]) -> Any:
    try:
        tx = make(row)
    except InvalidTransaction as exc:
        return ("rejected", exc.rejection.reason, exc.rejection.detail)
    return ("ok", list(tx.items()), [type(v) for v in tx.values()])


@settings(max_examples=600, deadline=None)
@given(csv_rows())
def test_numbers_read_first_give_the_contracts_result_on_the_text(row):
    expected = outcome(lambda r: normalise_checked(r, zone=ZONE, now=NOW), dict(row))
    assert outcome(lambda r: normalise(read_numbers(r), zone=ZONE, now=NOW), dict(row)) == expected


def test_a_typical_csv_row_takes_the_one_pass_check(monkeypatch):
    row = {"transaction_id": "t1", "user_id": "u1", "amount": "1,250.00", "quantity": "2",
           "timestamp": "2026-12-01T10:00:00Z", "payment_method": "card", "location": "Berlin, DE"}
    checked: list[Any] = []
    monkeypatch.setattr(contract, "normalise_checked", lambda *a, **k: checked.append(a))
    [tx], rejected = normalise_rows([row], ZONE, NOW)
    assert checked == [] and rejected == 0  # the full checks never ran
    assert tx["amount"] == 1250.0 and tx["quantity"] == 2 and type(tx["quantity"]) is int
