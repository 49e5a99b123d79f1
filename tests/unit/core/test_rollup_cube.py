"""The rollup cubes and the kpi_* documents derived from them: pure, no server."""

from __future__ import annotations

import datetime as dt
import functools
import operator
import random
from collections import defaultdict
from fractions import Fraction

import pytest

from txnmon.core import rollup_cube, rollups
from txnmon.core.contract import MAX_AMOUNT

UTC = dt.UTC
T0 = dt.datetime(2025, 9, 30, 10, 0, tzinfo=UTC)
BY_NAME = {r.collection: r for r in rollups.ROLLUPS}


def _tx(at: dt.datetime, amount: float = 100.0, **extra) -> dict:
    return {"event_time": at, "amount": amount, "location": "Mumbai", "product": "Laptop", "category": "Electronics",
            "payment_method": "UPI", "value_category": "Low", "alert_flag": False, "late": False, **extra}


def _random_docs(n: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        doc = _tx(T0 + dt.timedelta(seconds=rng.randrange(3 * 3600)), round(rng.uniform(0, 90_000), 2),
                  location=rng.choice(["Mumbai", "Delhi", "a|b", "a", None]),
                  product=rng.choice(["Laptop", "b|c", "c", "100%"]), category=rng.choice(["Electronics", None]),
                  payment_method=rng.choice(["UPI", "Wallet"]), value_category=rng.choice(["Low", "High"]),
                  alert_flag=rng.random() < 0.1, late=rng.random() < 0.05)
        if rng.random() < 0.1:
            doc["status"] = "failed"
        if rng.random() < 0.1:
            doc["type"] = "refund"
        if rng.random() < 0.05:
            del doc["product"]
        if i % 97 == 0:
            doc["amount"] = "n/a"  # not a number: counted, never summed
        docs.append(doc)
    return docs


def _reference(rollup: rollups.Rollup, docs: list[dict]) -> dict[str, dict]:
    """The rollup the slow, obvious way: exact fractions per bucket, then one rounding."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for d in docs:
        et = d["event_time"]
        bucket = et.replace(second=0, microsecond=0) if rollup.grain == "minute" else et.replace(
            minute=0, second=0, microsecond=0)
        groups[(bucket, *("(none)" if d.get(k) is None else d[k] for k in rollup.keys))].append(d)
    out = {}
    for key, ds in groups.items():
        numeric = [d["amount"] for d in ds if isinstance(d["amount"], float)]
        failed = [d for d in ds if d.get("status") == "failed"]
        refunds = [d for d in ds if d.get("type") == "refund" and d.get("status") != "failed"]
        sales = [d for d in ds if d not in failed and d not in refunds]
        exact = lambda xs: float(sum((Fraction(x) for x in xs), Fraction(0)))  # noqa: E731
        out[rollups.rollup_id(rollup, key)] = {
            "transactions": len(ds), "sales": len(sales), "failed_payments": len(failed), "refunds": len(refunds),
            "revenue": exact(d["amount"] for d in sales if isinstance(d["amount"], float)),
            "refund_amount": exact(d["amount"] for d in refunds if isinstance(d["amount"], float)),
            "avg_amount": float(sum(map(Fraction, numeric), Fraction(0)) / len(numeric)) if numeric else None,
            "alerted_transactions": sum(d["alert_flag"] is True for d in ds),
            "late_transactions": sum(d["late"] is True for d in ds),
        }
    return out


def _cube(docs) -> rollup_cube.TxCube:
    cube = rollup_cube.TxCube()
    for d in docs:
        cube.add(d)
    return cube


# --- the catalog -------------------------------------------------------------------------------


def test_every_transaction_rollup_is_derivable_from_the_one_cube():
    names = [r.collection for r in rollups.ROLLUPS]
    assert len(set(names)) == len(names) and all(n.startswith("kpi_") for n in names)
    assert names == ["kpi_revenue_minute", "kpi_location_hour", "kpi_product_hour", "kpi_payment_hour",
                     "kpi_value_category_hour", "kpi_alerts_hour", "kpi_signals_5min"]  # what the dashboard, BI read
    cube = _cube([_tx(T0)])
    for rollup in rollups.ROLLUPS:
        if rollup.source == "transactions":
            assert set(rollup.keys) <= set(rollups.CUBE_DIMS) and set(rollup.keys) <= set(rollups.TX_FIELDS)
            assert len(cube.rows(rollup)) == 1
        else:
            assert rollup.keys == ("rule", "severity")
    with pytest.raises(ValueError, match="not derivable"):
        cube.rows(rollups.Rollup("kpi_x", "transactions", "hour", ("country",), ""))


def test_cube_rows_equal_the_obvious_computation_for_every_rollup():
    docs = _random_docs(3_000)
    cube = _cube(docs)
    assert cube.read == 3_000 and cube.skipped == 0
    for rollup in rollups.ROLLUPS:
        if rollup.source != "transactions" or rollup.grain == "5min":  # signal buckets: their own test
            continue
        rows = {r["_id"]: r for r in cube.rows(rollup)}
        expected = _reference(rollup, docs)
        assert rows.keys() == expected.keys(), rollup.collection
        for _id, want in expected.items():
            got = rows[_id]
            assert {k: got[k] for k in want} == want, (rollup.collection, _id)
            assert set(got) == {"_id", rollup.grain, *rollup.keys, *rollups.TX_MEASURES}
            assert got[rollup.grain].tzinfo is not None and got[rollup.grain].second == 0


def test_measures_follow_the_documented_meaning():
    docs = [_tx(T0, 100.0), _tx(T0, 40.0, status="failed"), _tx(T0, 30.0, type="refund"),
            _tx(T0, 7.0, type="refund", status="failed"), _tx(T0, 5.0, alert_flag=True, late=True),
            _tx(T0, 1.0, alert_flag=1, late="yes")]  # only true booleans count as flags
    [row] = _cube(docs).rows(BY_NAME["kpi_revenue_minute"])
    assert row["_id"] == "2025-09-30T10:00" and row["minute"] == T0
    assert (row["transactions"], row["sales"], row["failed_payments"], row["refunds"]) == (6, 3, 2, 1)
    assert (row["revenue"], row["refund_amount"]) == (106.0, 30.0)
    assert row["avg_amount"] == pytest.approx(183 / 6)
    assert (row["alerted_transactions"], row["late_transactions"]) == (1, 1)


def test_sums_are_exact_and_independent_of_the_order_documents_arrive_in():
    amounts = [0.1] * 10 + [1e16, 1.0, -0.0, 1.0, 1e-300, 12_345.67]
    docs = [_tx(T0 + dt.timedelta(seconds=i), a) for i, a in enumerate(amounts)]
    exact = float(sum(map(Fraction, amounts), Fraction(0)))
    assert functools.reduce(operator.add, amounts) != exact  # adding floats one by one gets this wrong ...
    minute = BY_NAME["kpi_revenue_minute"]
    assert _cube(docs).rows(minute)[0]["revenue"] == exact  # ... the cube does not
    for seed in range(5):
        shuffled = docs[:]
        random.Random(seed).shuffle(shuffled)
        assert _cube(shuffled).rows(minute) == _cube(docs).rows(minute)


def test_amounts_at_the_contract_bound_stay_finite_and_add_up_exactly():
    docs = [_tx(T0 + dt.timedelta(minutes=i % 120), MAX_AMOUNT - i * 0.25) for i in range(2_000)]
    cube = _cube(docs)
    total = sum(d["amount"] for d in docs)  # exactly representable: quarters below 2**53
    for rollup in rollups.ROLLUPS[:5]:
        rows = cube.rows(rollup)
        assert sum(r["revenue"] for r in rows) == total, rollup.collection
        assert all(r["revenue"] < float("inf") for r in rows)


def test_documents_without_an_event_time_or_a_numeric_amount():
    cube = _cube([{"amount": 5.0}, _tx("2025-09-30", 5.0), _tx(T0, float("inf")), _tx(T0, True),
                  _tx(T0.replace(tzinfo=None), 2.0), _tx(T0.astimezone(dt.timezone(dt.timedelta(hours=5))), 3.0)])
    assert (cube.read, cube.skipped) == (6, 2)
    [row] = cube.rows(BY_NAME["kpi_revenue_minute"])  # naive = UTC; other zones moved to UTC
    assert row["minute"] == T0 and row["transactions"] == 4 and row["revenue"] == 5.0 and row["avg_amount"] == 2.5


def test_an_hourly_rollup_without_keys_is_derivable_too():
    hourly = rollups.Rollup("kpi_hour", "transactions", "hour", (), "revenue per hour")
    rows = _cube([_tx(T0, 1.0), _tx(T0 + dt.timedelta(minutes=59), 2.0, location="Pune")]).rows(hourly)
    assert [(r["_id"], r["hour"], r["revenue"]) for r in rows] == [("2025-09-30T10", T0, 3.0)]


# --- keys --------------------------------------------------------------------------------------


def test_colliding_key_parts_get_different_ids():
    product = BY_NAME["kpi_product_hour"]
    one = rollups.rollup_id(product, (T0, "a|b", "c"))
    other = rollups.rollup_id(product, (T0, "a", "b|c"))
    assert one != other
    assert (one, other) == ("2025-09-30T10|a%7Cb|c", "2025-09-30T10|a|b%7Cc")
    assert rollups.split_id(one) == ["2025-09-30T10", "a|b", "c"]
    assert rollups.split_id(rollups.rollup_id(product, (T0, "100%7C", "x"))) == ["2025-09-30T10", "100%7C", "x"]
    rows = _cube([_tx(T0, product="a|b", category="c"), _tx(T0, product="a", category="b|c")]).rows(product)
    assert len(rows) == 2 and {(r["product"], r["category"]) for r in rows} == {("a|b", "c"), ("a", "b|c")}


def test_missing_keys_become_none_and_fields_carry_the_plain_values():
    [row] = _cube([_tx(T0, product=None, category=None)]).rows(BY_NAME["kpi_product_hour"])
    assert row["_id"] == "2025-09-30T10|(none)|(none)"
    assert (row["hour"], row["product"], row["category"]) == (T0, "(none)", "(none)")


# --- alerts ------------------------------------------------------------------------------------


def test_alert_cube_counts_live_alerts_users_and_exact_amounts():
    alerts = [{"event_time": T0 + dt.timedelta(minutes=i), "rule": "velocity", "severity": "medium",
               "user_id": f"U{i % 3}", "amount": 0.1} for i in range(10)]
    alerts.append({"event_time": T0, "rule": "velocity", "severity": "medium", "user_id": "U9", "amount": 1.0,
                   "mode": "shadow"})
    cube = rollup_cube.AlertCube()
    for a in alerts:
        cube.add(a)
    [row] = cube.rows(BY_NAME["kpi_alerts_hour"])
    assert row == {"_id": "2025-09-30T10|velocity|medium", "hour": T0, "rule": "velocity", "severity": "medium",
                   "alerts": 10, "amount": 1.0, "users": 3}
    assert cube.skipped == 1 and cube.hours() == {"2025-09-30T10"}


def test_a_multi_item_checkout_is_one_buyer_in_the_signal_buckets():
    basket = [_tx(T0 + dt.timedelta(seconds=10 * i), user_id="U1", product="Rice") for i in range(4)]
    other = [_tx(T0 + dt.timedelta(minutes=2), user_id="U2", product="Rice")]
    [doc] = _cube(basket + other).rows(BY_NAME["kpi_signals_5min"])
    assert doc["products"] == [{"product": "Rice", "sales": 5, "buyers": 2}]
    assert doc["locations"][0]["sales"] == 5 and doc["locations"][0]["buyers"] == 2


def test_signal_buckets_count_payment_outcomes_and_sales_per_five_minutes():
    docs = [_tx(T0 + dt.timedelta(minutes=1), user_id="U1"),
            _tx(T0 + dt.timedelta(minutes=4), user_id="U2", status="failed"),
            _tx(T0 + dt.timedelta(minutes=4, seconds=30), user_id="U2", status="failed"),
            _tx(T0 + dt.timedelta(minutes=5), user_id="U3", location="a.b", product="$x"),
            _tx(T0 + dt.timedelta(minutes=6), user_id="U3", type="refund"),
            _tx(T0 + dt.timedelta(minutes=7), user_id="U4", alert_flag=True)]  # flagged by a fraud rule: no trend
    rows = {d["_id"]: d for d in _cube(docs).rows(BY_NAME["kpi_signals_5min"])}
    assert sorted(rows) == ["2025-09-30T10:00", "2025-09-30T10:05"]
    first, second = rows["2025-09-30T10:00"], rows["2025-09-30T10:05"]
    assert first["bucket"] == T0 and first["transactions"] == 3
    assert first["payment"] == [{"payment_method": "UPI", "transactions": 3, "failed_payments": 2, "failed_users": 1,
                                 "failure_rate": 2 / 3}]
    assert first["products"] == [{"product": "Laptop", "sales": 1, "buyers": 1}]  # failed payments are no sales
    # keys are values, never field names; refunds are no sales
    assert second["products"] == [{"product": "$x", "sales": 1, "buyers": 1}]
    assert second["locations"] == [{"location": "a.b", "sales": 1, "buyers": 1}]
    assert second["payment"][0]["transactions"] == 3
