"""Customer KPIs: new vs returning, repeat rate, order value per segment, top customers; first purchases kept
idempotently in packed shards. Pure, no server."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from txnmon.core import customers, rollup_cube

T0 = dt.datetime(2025, 10, 1, 10, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


def _sale(at: dt.datetime, user: str, amount: float, **extra) -> dict:
    return {"event_time": at, "amount": amount, "user_id": user, "location": "Pune", "product": "Novel",
            "category": "Books", "payment_method": "UPI", "value_category": "Low", **extra}


def _cube(docs) -> rollup_cube.TxCube:
    cube = rollup_cube.TxCube()
    for d in docs:
        cube.add(d)
    return cube


def _hour_docs(cube: rollup_cube.TxCube, firsts) -> dict[dt.datetime, dict]:
    return {d["hour"]: d for d in customers.hour_documents(cube.buyers_by_hour(), firsts, lambda h: h.isoformat())}


def test_new_and_returning_customers_per_hour_with_order_value_per_segment():
    cube = _cube([_sale(T0, "A", 100.0), _sale(T0 + dt.timedelta(minutes=5), "A", 300.0), _sale(T0, "B", 50.0),
                  _sale(T0 + H, "A", 10.0), _sale(T0 + H, "C", 20.0),
                  _sale(T0 + H, "D", 999.0, status="failed"), _sale(T0 + H, "E", 5.0, type="refund")])
    firsts = customers.first_hours(cube.buyers_by_hour())
    assert firsts == {"A": T0, "B": T0, "C": T0 + H}  # failed payments and refunds are no purchases
    docs = _hour_docs(cube, firsts)
    first, second = docs[T0], docs[T0 + H]
    assert (first["customers"], first["new_customers"], first["returning_customers"]) == (2, 2, 0)
    assert first["orders"] == 3 and first["revenue"] == 450.0 and first["avg_order_value_new"] == 150.0
    assert first["avg_order_value_returning"] is None and first["repeat_purchase_rate"] == 0.0
    assert (second["new_customers"], second["returning_customers"], second["repeat_purchase_rate"]) == (1, 1, 0.5)
    assert second["avg_order_value_returning"] == 10.0 and second["avg_order_value_new"] == 20.0
    assert first["top"][0] == {"user_id": "A", "orders": 2, "revenue": 400.0}


def test_a_late_first_purchase_reclassifies_the_hour_that_counted_the_customer_new():
    stored = {"A": T0 + 5 * H}
    merged = customers.merged_firsts(stored, {"A": T0}, full_rebuild=False)
    assert merged == {"A": T0}
    assert customers.moved_firsts(stored, merged, recomputed={T0}) == {T0 + 5 * H}
    assert customers.moved_firsts(stored, merged, recomputed={T0, T0 + 5 * H}) == set()
    # a later purchase never moves the first one; a full rebuild takes exactly what it saw
    assert customers.merged_firsts(stored, {"A": T0 + 9 * H}, full_rebuild=False) == stored
    assert customers.merged_firsts(stored, {"B": T0}, full_rebuild=True) == {"B": T0}


@given(st.dictionaries(st.text(min_size=1, max_size=12), st.integers(0, 10_000), max_size=60))
def test_first_purchases_pack_into_shards_and_come_back_unchanged(raw):
    firsts = {u: T0 + h * H for u, h in raw.items()}
    docs = customers.firsts_documents(firsts)
    assert len(docs) <= customers.SHARDS and all(d["_id"] == customers.shard_of(u) for d in docs
                                                 for u, _ in d["firsts"])
    assert customers.firsts_from_documents(docs) == firsts
    assert sum(d["customers"] for d in docs) == len(firsts)


def test_merging_the_same_run_twice_changes_nothing():
    stored = {"A": T0, "B": T0 + H}
    seen = {"B": T0 + 2 * H, "C": T0 + H}
    once = customers.merged_firsts(stored, seen, full_rebuild=False)
    assert customers.merged_firsts(once, seen, full_rebuild=False) == once
