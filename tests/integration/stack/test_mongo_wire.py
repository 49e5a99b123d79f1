"""The MongoDB calls txnmon relies on, against the real MongoDB-wire server over TCP."""

from __future__ import annotations

import datetime as dt

import pytest

from txnmon.adapters.mongo import MongoStore

pytestmark = pytest.mark.integration

UTC = dt.UTC


@pytest.fixture
def db(isolated_settings):
    return MongoStore(isolated_settings)


def _tx(i: int) -> dict:
    return {
        "_id": f"T{i}",
        "transaction_id": f"T{i}",
        "user_id": f"U{i % 7}",
        "amount": float(100 * (i % 5)),
        "location": ["Mumbai", "Delhi", "Pune"][i % 3],
        "event_time": dt.datetime(2025, 9, 30, 10, i % 60, tzinfo=UTC),
    }


def test_server_reports_a_wire_version_pymongo_accepts(db):
    info = db.ping()
    assert info["maxWireVersion"] >= 9


def test_bulk_upserts_insert_once_and_keep_the_first_document(db):
    first = db.insert_missing("transactions", [_tx(i) for i in range(500)])
    assert (first.inserted, first.existing) == (500, 0)
    changed = [{**_tx(i), "amount": -1.0} for i in range(250)]
    again = db.insert_missing("transactions", changed + [_tx(i) for i in range(500, 510)])
    assert (again.inserted, again.existing) == (10, 250)
    assert db.count("transactions") == 510
    assert db.find_one("transactions", {"_id": "T3"})["amount"] == 300.0


def test_datetimes_round_trip_as_utc(db):
    db.insert_missing("transactions", [_tx(1)])
    stored = db.find_one("transactions", {"_id": "T1"})
    assert stored["event_time"] == dt.datetime(2025, 9, 30, 10, 1, tzinfo=UTC)
    assert stored["event_time"].tzinfo is not None


def test_indexes_are_created_idempotently(db):
    db.ensure_indexes()
    db.ensure_indexes()
    names = set(db.collection("transactions").index_information())
    assert {"user_recent", "event_time", "processed_time"} <= names
    assert {"created_at", "rule_event_time"} <= set(db.collection("alerts").index_information())
    assert "key_id" in set(db.collection("api_keys").index_information())  # every API request looks a key up


def test_find_with_filter_sort_limit_and_projection(db):
    db.insert_missing("transactions", [_tx(i) for i in range(60)])
    rows = db.find("transactions", {"user_id": "U3"}, sort=[("event_time", -1)],
                   limit=3, projection={"_id": 1, "event_time": 1})
    assert [r["_id"] for r in rows] == ["T59", "T52", "T45"]
    assert set(rows[0]) == {"_id", "event_time"}
    ranged = db.find("transactions", {"event_time": {
        "$gte": dt.datetime(2025, 9, 30, 10, 10, tzinfo=UTC), "$lt": dt.datetime(2025, 9, 30, 10, 12, tzinfo=UTC)}},
        sort=[("_id", 1)])
    assert [r["_id"] for r in ranged] == ["T10", "T11"]


def test_aggregation_group_and_merge_materialise_a_rollup(db):
    db.insert_missing("transactions", [_tx(i) for i in range(60)])
    pipeline = [
        {"$match": {"event_time": {"$gte": dt.datetime(2025, 9, 30, 10, 0, tzinfo=UTC)}}},
        {"$group": {
            "_id": {"location": "$location",
                    "minute": {"$dateToString": {"date": "$event_time", "format": "%Y-%m-%dT%H:%M"}}},
            "revenue": {"$sum": "$amount"}, "count": {"$sum": 1}, "avg_amount": {"$avg": "$amount"},
            "max_amount": {"$max": "$amount"}, "users": {"$addToSet": "$user_id"},
        }},
        {"$merge": {"into": "kpi_test", "on": "_id", "whenMatched": "replace", "whenNotMatched": "insert"}},
    ]
    db.aggregate("transactions", pipeline)
    db.aggregate("transactions", pipeline)  # re-running replaces, never duplicates
    assert db.count("kpi_test") == 60
    total = db.aggregate("kpi_test", [{"$group": {"_id": None, "r": {"$sum": "$revenue"}}}])
    assert total[0]["r"] == sum(_tx(i)["amount"] for i in range(60))
    one = db.find_one("kpi_test", {"_id": {"location": "Mumbai", "minute": "2025-09-30T10:03"}})
    assert one["count"] == 1 and one["users"] == ["U3"]
