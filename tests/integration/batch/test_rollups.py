"""Rollups against the real stack: pending batches decide what a run covers, whatever the schedule.

Every test processes real messages with the real processor (its sinks write the `touched_hours`
entries), runs the rollup job and checks the kpi_* collections against the stored transactions.
"""

from __future__ import annotations

import datetime as dt
import threading
from fractions import Fraction

import pytest

from tests.fixtures.pipeline import T0, produce, run_until_idle, synthetic_rows, tx_row
from txnmon.adapters.mongo import LeasesRepository, MongoStore
from txnmon.core.collection_names import ALERTS, KPI_RUNS, TOUCHED_HOURS, TRANSACTIONS
from txnmon.dashboard import queries
from txnmon.errors import StoreRefused, StoreUnavailable
from txnmon.jobs import replay, rollups, status
from txnmon.settings import SAMPLE_CSV

pytestmark = pytest.mark.integration

UTC = dt.UTC
SEED_REVENUE = 777_650
# the rollups with revenue (kpi_signals_5min counts payments and sales for the business signals)
TX_ROLLUPS = [r.collection for r in rollups.ROLLUPS if r.source == TRANSACTIONS and r.grain != "5min"]


def _revenue(db) -> dict[str, float]:
    return {name: sum(d["revenue"] for d in db.find(name)) for name in TX_ROLLUPS}


def _snapshot(db) -> dict[str, list[dict]]:
    return {name: sorted(db.find(name), key=lambda d: d["_id"]) for name in rollups.ROLLUP_NAMES}


def _pending(db) -> list[dict]:
    return db.find(TOUCHED_HOURS, {"pending": True})


def _sales_total(db) -> Fraction:
    return sum((Fraction(d["amount"]) for d in db.find(TRANSACTIONS)
                if d.get("status") != "failed" and d.get("type") != "refund"), Fraction(0))


def test_a_manual_run_right_after_processing_includes_every_stored_transaction(isolated_settings):
    s = isolated_settings
    db = MongoStore(s)
    replay.replay_csv(s, SAMPLE_CSV)
    run_until_idle(s)
    entries = _pending(db)
    assert entries and sum(e["transactions"] for e in entries) >= 100
    run = rollups.run_rollups(db)  # no interval, no clock: whatever is stored now
    assert run.hours == ["2025-09-30T10", "2025-09-30T11", "2025-09-30T12", "2025-09-30T13"]
    assert run.entries == len(entries) and _pending(db) == []
    assert all(n == SEED_REVENUE for n in _revenue(db).values()), _revenue(db)
    assert sum(d["transactions"] for d in db.find("kpi_revenue_minute")) == 100
    assert sum(d["alerts"] for d in db.find("kpi_alerts_hour")) == db.count(ALERTS, {"mode": {"$ne": "shadow"}})
    doc = db.find_one(KPI_RUNS, {"_id": run.run_id})
    assert doc["success"] and doc["passes"]["transactions"] == 1 and doc["transactions_read"] == 100
    assert doc["entries_consumed"] == len(entries) and doc["as_of"] == run.as_of.replace(
        microsecond=run.as_of.microsecond // 1000 * 1000)
    assert doc["mark"] == max(e["acked_at"] for e in entries)
    consumed = db.find(TOUCHED_HOURS, {"run_id": run.run_id})
    assert len(consumed) == len(entries) and all(e["rolled_up_at"] and not e["pending"] for e in consumed)


def test_a_batch_delayed_past_its_interval_by_an_outage_is_counted_by_the_next_run(isolated_settings):
    s = isolated_settings
    db = MongoStore(s)
    replay.replay_csv(s, SAMPLE_CSV)
    run_until_idle(s)
    rollups.run_rollups(db)
    # a batch is polled and stamped, then MongoDB is away: a run happens while it waits
    produce(s, [tx_row("LATE-1", "U900", dt.datetime(2025, 9, 30, 10, 30, tzinfo=UTC), 1_000)])
    during = rollups.run_rollups(db)
    assert during.entries == 0 and during.passes[TRANSACTIONS] == 0 and during.hours == []
    assert all(n == SEED_REVENUE for n in _revenue(db).values())
    # the outage ends: the batch is stored, stamped processed before that run (an interval-based
    # run would never look at it again), its touched_hours entry written only now
    run_until_idle(s)
    long_ago = during.as_of - dt.timedelta(minutes=20)
    db.collection(TRANSACTIONS).update_one({"_id": "LATE-1"}, {"$set": {"processed_time": long_ago}})
    # and one more batch whose entry says it was acknowledged a day ago (a clock that was off)
    produce(s, [tx_row("LATE-2", "U901", dt.datetime(2025, 9, 30, 12, 5, tzinfo=UTC), 2_000)])
    run_until_idle(s)
    db.collection(TOUCHED_HOURS).update_many({"pending": True, "hours": ["2025-09-30T12"]},
                                             {"$set": {"acked_at": long_ago - dt.timedelta(days=1)}})
    after = rollups.run_rollups(db)
    assert after.hours == ["2025-09-30T10", "2025-09-30T12"] and after.entries == 2
    assert all(n == SEED_REVENUE + 3_000 for n in _revenue(db).values()), _revenue(db)
    minute = db.find_one("kpi_revenue_minute", {"_id": "2025-09-30T10:30"})
    assert minute["transactions"] == 2 and minute["revenue"] == 4_500 + 1_000  # seed row 14 + the late one


def test_after_a_scheduler_pause_the_next_run_catches_up(settings_factory):
    s = settings_factory(batch_max_records=7)  # many small batches: many entries to catch up on
    db = MongoStore(s)
    replay.replay_csv(s, SAMPLE_CSV)
    run_until_idle(s)
    rollups.run_rollups(db)
    # the scheduler is paused while two more streams are processed: nobody runs the rollups
    first = synthetic_rows(150, users=20, seed=11)
    produce(s, first)
    run_until_idle(s)
    produce(s, [{**r, "transaction_id": f"B{r['transaction_id']}"} for r in synthetic_rows(150, users=20, seed=12)])
    run_until_idle(s)
    waiting = _pending(db)
    assert len(waiting) >= 300 // 7
    caught_up = rollups.run_rollups(db)
    assert caught_up.entries == len(waiting) and _pending(db) == []
    assert caught_up.passes[TRANSACTIONS] == 1  # however many batches and hours: one read
    assert set(caught_up.hours) == {h for e in waiting for h in e["hours"]}
    total = float(_sales_total(db))
    assert all(n == total for n in _revenue(db).values()), (_revenue(db), total)
    assert sum(d["transactions"] for d in db.find("kpi_revenue_minute")) == db.count(TRANSACTIONS) == 400


def test_colliding_key_parts_stay_apart(isolated_settings):
    s = isolated_settings
    db = MongoStore(s)
    at = dt.datetime(2025, 9, 30, 10, 5, tzinfo=UTC)
    produce(s, [tx_row("K1", "U1", at, 100, location="a|b", product="a|b", category="c"),
                tx_row("K2", "U2", at, 200, location="a", product="a", category="b|c"),
                tx_row("K3", "U3", at, 400, location="a%7Cb", product="100%", category="c")])
    run_until_idle(s)
    rollups.run_rollups(db)
    products = {(d["product"], d["category"]): d for d in db.find("kpi_product_hour")}
    assert {k: d["revenue"] for k, d in products.items()} == {("a|b", "c"): 100, ("a", "b|c"): 200,
                                                             ("100%", "c"): 400}
    assert products[("a|b", "c")]["_id"] == "2025-09-30T10|a%7Cb|c"
    locations = {d["location"]: d["revenue"] for d in db.find("kpi_location_hour")}
    assert locations == {"a|b": 100, "a": 200, "a%7Cb": 400}
    before = _snapshot(db)
    rollups.run_rollups(db, full_rebuild=True)
    assert _snapshot(db) == before


def test_rerunning_any_run_changes_nothing_and_a_failed_run_leaves_its_batches_pending(isolated_settings):
    s = isolated_settings
    db = MongoStore(s)
    replay.replay_csv(s, SAMPLE_CSV)
    run_until_idle(s)
    entries = _pending(db)

    failing = MongoStore(s)
    calls = []

    def write_then_fail(collection, replace, delete_ids=()):
        calls.append(collection)
        if len(calls) == 3:
            raise StoreUnavailable("connection refused (a MongoDB outage mid-run)")
        return MongoStore.write_documents(failing, collection, replace, delete_ids)

    failing.write_documents = write_then_fail
    with pytest.raises(StoreUnavailable):
        rollups.run_rollups(failing)
    assert len(_pending(db)) == len(entries), "a failed run consumes nothing"
    failed = db.find(KPI_RUNS, {"success": False})
    assert len(failed) == 1 and "outage mid-run" in failed[0]["error"] and failed[0]["state"] == "failed"
    assert rollups.freshness(db)["last_run"] is None

    first = rollups.run_rollups(db)  # the retry: the same entries, the same hours
    assert first.entries == len(entries)
    snapshot = _snapshot(db)
    assert all(n == SEED_REVENUE for n in _revenue(db).values())
    again = rollups.run_rollups(db)  # nothing pending: nothing read, nothing written
    assert again.entries == 0 and again.passes[TRANSACTIONS] == 0 and _snapshot(db) == snapshot
    # the same run once more, as if its marks had been lost: same hours, equal documents, no writes
    db.collection(TOUCHED_HOURS).update_many({}, {"$set": {"pending": True}})
    replayed = rollups.run_rollups(db)
    assert replayed.hours == first.hours and _snapshot(db) == snapshot
    assert all(sum(w.values()) == 0 for w in replayed.written.values()), replayed.written
    rebuilt = rollups.run_rollups(db, full_rebuild=True)
    assert rebuilt.hours == first.hours and _snapshot(db) == snapshot


def test_the_rollups_of_a_stream_add_up_to_its_stored_transactions(settings_factory):
    s = settings_factory(batch_max_records=50)
    db = MongoStore(s)
    rows = synthetic_rows(600, users=40, seed=21)
    for i, row in enumerate(rows):  # refunds, failed payments, quarters and amounts at the contract's bound
        if i % 17 == 0:
            row["type"] = "refund"
        if i % 23 == 0:
            row["status"] = "failed"
        if i % 31 == 0:
            row["amount"] = 999_999_999_999.75
        elif i % 5 == 0:
            row["amount"] = row["amount"] + 0.25
    # processed and rolled up in three parts, as a stream would be
    for part in (rows[:200], rows[200:450], rows[450:]):
        produce(s, part)
        run_until_idle(s)
        rollups.run_rollups(db)
    stored = db.find(TRANSACTIONS)
    assert len(stored) == 600
    sales = _sales_total(db)
    refunds = sum((Fraction(d["amount"]) for d in stored if d.get("type") == "refund" and d.get("status") != "failed"),
                  Fraction(0))
    for name in TX_ROLLUPS:
        docs = db.find(name)
        assert sum(d["transactions"] for d in docs) == 600, name
        assert sum((Fraction(d["revenue"]) for d in docs), Fraction(0)) == sales, name
        assert sum((Fraction(d["refund_amount"]) for d in docs), Fraction(0)) == refunds, name
        assert sum(d["failed_payments"] for d in docs) == sum(d.get("status") == "failed" for d in stored), name
        assert sum(d["alerted_transactions"] for d in docs) == sum(d["alert_flag"] for d in stored), name
    live_alerts = db.count(ALERTS, {"mode": {"$ne": "shadow"}})
    assert sum(d["alerts"] for d in db.find("kpi_alerts_hour")) == live_alerts > 0
    # customers: every successful purchase is some customer's order, in whichever part it arrived
    assert sum((Fraction(d["revenue"]) for d in db.find("kpi_customers_hour")), Fraction(0)) == sales
    assert sum(d["transactions"] for d in db.find("kpi_signals_5min")) == 600


def test_freshness_in_status_kpi_runs_and_the_dashboard_query(isolated_settings):
    s = isolated_settings
    db = MongoStore(s)
    report = status.collect(s)
    assert report["kpis"]["last_run"] is None and "no successful rollup run yet" in status.render(report)
    assert queries.kpis_as_of(db) is None
    produce(s, [tx_row("F1", "U1", dt.datetime(2025, 9, 30, 10, 5, tzinfo=UTC), 100)])
    run_until_idle(s)
    assert status.collect(s)["kpis"]["pending_batches"] == 1
    run = rollups.run_rollups(db, trigger="cli")
    report = status.collect(s)
    kpis = report["kpis"]
    assert kpis["pending_batches"] == 0 and kpis["last_run"]["_id"] == run.run_id
    assert set(kpis["collections"]) == {*rollups.ROLLUP_NAMES, "kpi_customers_hour", "kpi_rule_quality"}
    assert all(c["run_id"] == run.run_id and c["last_success"] >= c["as_of"] for c in kpis["collections"].values())
    text = status.render(report)
    assert f"as of {kpis['last_run']['as_of']:%Y-%m-%d %H:%M:%S} UTC" in text and "kpi_location_hour" in text
    assert abs(queries.kpis_as_of(db) - run.as_of) < dt.timedelta(milliseconds=1)


def test_one_run_at_a_time(isolated_settings):
    db = MongoStore(isolated_settings)
    leases = LeasesRepository(db)
    now = dt.datetime.now(UTC)
    assert leases.acquire(rollups.LEASE, "someone-else", now, now + dt.timedelta(minutes=5))
    with pytest.raises(rollups.RollupBusy):
        rollups.run_rollups(db)
    assert db.find(KPI_RUNS) == []
    leases.release(rollups.LEASE, "someone-else")
    assert rollups.run_rollups(db).entries == 0
    # a lease left behind by a crashed run expires
    assert leases.acquire(rollups.LEASE, "crashed", now - dt.timedelta(hours=1), now - dt.timedelta(minutes=1))
    assert rollups.run_rollups(db).entries == 0


def test_the_store_streams_a_read_through_a_callback_and_translates_its_errors(isolated_settings):
    db = MongoStore(isolated_settings)
    db.insert_missing("things", [{"_id": i, "n": i} for i in range(25_000)])
    seen = []
    assert db.for_each("things", {"n": {"$gte": 5}}, {"_id": 0, "n": 1}, lambda d: seen.append(d["n"]),
                       batch_size=1_000) == 24_995
    assert sorted(seen) == list(range(5, 25_000))
    with pytest.raises(StoreRefused):
        db.for_each("things", {"n": {"$bogus": 1}}, {"_id": 1}, seen.append)

    def stop(_):
        raise RuntimeError("the caller stops")

    with pytest.raises(RuntimeError, match="the caller stops"):
        db.for_each("things", {}, {"_id": 1}, stop, batch_size=100)
    assert {t.name for t in threading.enumerate()}.isdisjoint({"txnmon-read-things"})
    assert db.write_documents("things", [{"_id": 1, "n": -1}, {"_id": "new", "n": 0}], [2, 3, "absent"]) == {
        "upserted": 1, "replaced": 1, "deleted": 2}
    assert db.find_one("things", {"_id": 1})["n"] == -1 and db.count("things") == 24_999


def test_customer_kpis_follow_first_purchases_even_when_one_arrives_late(isolated_settings):
    s = isolated_settings
    db = MongoStore(s)
    h5, h6 = T0 + dt.timedelta(hours=5), T0 + dt.timedelta(hours=6)
    produce(s, [tx_row("C1", "U1", h5, 100.0), tx_row("C2", "U2", h5, 300.0), tx_row("C3", "U1", h6, 50.0),
                tx_row("C4", "U3", h6, 10.0, status="failed")])
    run_until_idle(s)
    rollups.run_rollups(db)
    by_hour = {d["hour"]: d for d in db.find("kpi_customers_hour")}
    assert (by_hour[h5]["new_customers"], by_hour[h5]["returning_customers"]) == (2, 0)
    assert (by_hour[h6]["new_customers"], by_hour[h6]["returning_customers"]) == (0, 1)
    assert by_hour[h5]["avg_order_value_new"] == 200.0 and by_hour[h6]["repeat_purchase_rate"] == 1.0
    assert by_hour[h5]["top"][0] == {"user_id": "U2", "orders": 1, "revenue": 300.0}

    produce(s, [tx_row("C0", "U1", T0, 20.0)])  # U1's real first purchase, five hours earlier, arrives late
    run_until_idle(s)
    rollups.run_rollups(db)
    queued = _pending(db)
    assert [e["hours"] for e in queued] == [[h5.strftime("%Y-%m-%dT%H")]], "the hour that counted U1 new is queued"
    rollups.run_rollups(db)
    by_hour = {d["hour"]: d for d in db.find("kpi_customers_hour")}
    assert (by_hour[T0]["new_customers"], by_hour[h5]["new_customers"], by_hour[h5]["returning_customers"]) == (
        1, 1, 1)
    incremental = {c: sorted(db.find(c), key=lambda d: d["_id"]) for c in ("kpi_customers_hour", "customer_firsts")}
    rollups.run_rollups(db, full_rebuild=True)
    assert {c: sorted(db.find(c), key=lambda d: d["_id"]) for c in incremental} == incremental
