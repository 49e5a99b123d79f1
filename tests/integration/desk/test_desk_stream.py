"""The analyst's desk with the real processor: cases across a crash, lists picked up live."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from tests.fixtures.pipeline import T0, produce, run_until_idle, start_in_thread, start_process, tx_row, wait_for
from txnmon.adapters.mongo import MongoStore
from txnmon.cli import main
from txnmon.core.collection_names import ALERTS, AUDIT_LOG, CASES, RULE_VERSIONS, SUPPRESSED_ALERTS
from txnmon.jobs import lists

pytestmark = pytest.mark.integration


def burst_rows() -> list[dict]:
    """Six users, 40 transactions each two minutes apart, interleaved: velocity fires on most."""
    return [tx_row(f"V{u}-{i:02d}", f"U{u}", T0 + dt.timedelta(minutes=2 * i, seconds=u))
            for i in range(40) for u in range(6)]


def cases_of(settings) -> dict[str, list[str]]:
    return {c["_id"]: sorted(c["alert_ids"]) for c in MongoStore(settings).find(CASES)}


def test_alerts_land_in_the_same_cases_across_a_crash_and_restart(settings_factory):
    clean = settings_factory(batch_max_records=20, case_window_minutes=30)
    produce(clean, burst_rows())
    run_until_idle(clean)
    expected = cases_of(clean)
    alerts = MongoStore(clean).find(ALERTS, projection={"_id": 1})
    assert len(alerts) > 100
    assert sorted(a for ids in expected.values() for a in ids) == sorted(a["_id"] for a in alerts)
    assert 6 * 2 <= len(expected) <= 6 * 3  # 80 minutes of alerts in 30-minute windows, per user

    s = settings_factory(batch_max_records=20, case_window_minutes=30)
    produce(s, burst_rows())
    crashed = start_process(s, "--exit-when-idle", "6", TXNMON_FAILPOINTS="mongodb-written@3")
    out, _ = crashed.communicate(timeout=180)
    assert crashed.returncode == 137, out.decode()[-2000:]  # died after MongoDB (cases too), before the commit
    restarted = start_process(s, "--exit-when-idle", "4")
    out, _ = restarted.communicate(timeout=240)
    assert restarted.returncode == 0, out.decode()[-2000:]
    assert cases_of(s) == expected
    # the processor stored its rules text once and audited the load once
    store = MongoStore(s)
    (version,) = store.find(RULE_VERSIONS)
    assert "velocity" in version["text"]
    assert store.count(AUDIT_LOG, {"action": "rules.loaded"}) == 1


def test_a_list_entry_takes_effect_within_seconds_and_expires_on_time(settings_factory, monkeypatch, capsys):
    s = settings_factory(lists_refresh_seconds=0.5)
    store = MongoStore(s)
    processor, thread = start_in_thread(s, idle_s=120)
    try:
        def big(tid: str, user: str) -> dict:
            return tx_row(tid, user, dt.datetime.now(dt.UTC), 60_000)

        produce(s, [big("L0", "U1")])
        wait_for(lambda: store.find_one(ALERTS, {"_id": "L0:high_amount"}) is not None, 60, "the first alert")
        # longer than the 10 s the entry is given to take effect: L1 must be judged while it holds
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=15)
        lists.add_entry(store, "trusted_users", "U1", reason="wholesale buyer, verified", by="ana",
                        expires_at=expires, rule="high_amount")
        lists.add_entry(store, "blocked_users", "U2", reason="chargebacks", by="ana")
        added = time.monotonic()
        time.sleep(1.5)  # a few reload periods
        produce(s, [big("L1", "U1"), tx_row("L2", "U2", dt.datetime.now(dt.UTC), 20)])
        wait_for(lambda: store.find_one(SUPPRESSED_ALERTS, {"_id": "L1:high_amount"}) is not None, 20,
                 "the trusted user's alert silenced")
        assert time.monotonic() - added < 10
        silenced = store.find_one(SUPPRESSED_ALERTS, {"_id": "L1:high_amount"})
        assert silenced["suppressed_by"] == "list:trusted_users:u1:high_amount"
        assert store.find_one(ALERTS, {"_id": "L1:high_amount"}) is None
        wait_for(lambda: store.find_one(ALERTS, {"_id": "L2:listed"}) is not None, 20, "the blocked user's alert")
        assert "blocked_users (chargebacks" in store.find_one(ALERTS, {"_id": "L2:listed"})["reason"]
        # after the expiry the rule speaks again for that user
        time.sleep(max(0.0, (expires - dt.datetime.now(dt.UTC)).total_seconds()) + 1.0)
        produce(s, [big("L3", "U1")])
        wait_for(lambda: store.find_one(ALERTS, {"_id": "L3:high_amount"}) is not None, 20, "the alert after expiry")
        # an alert explains itself: the velocity burst it counted, by transaction id
        start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        # four separate checkouts (70 s apart) within 10 minutes: the velocity typology's fourth
        produce(s, [tx_row(f"B{i}", "U4", start + dt.timedelta(seconds=70 * i)) for i in range(4)])
        wait_for(lambda: store.find_one(ALERTS, {"_id": "B3:velocity"}) is not None, 20, "the velocity alert")
    finally:
        processor.request_stop()
        thread.join(30)
    assert not thread.is_alive()
    why = store.find_one(ALERTS, {"_id": "B3:velocity"})["explanation"]
    assert why["counted"] == ["B0", "B1", "B2"] and why["params"]["thresholds"] == {"medium": 100}
    assert why["signals"][0]["params"]["min_count"] == 4 and why["signals"][0]["measured"]["checkouts"] == 4
    for key, value in {"MONGO_DB": s.mongo_db, "TOPIC_RAW": s.topic_raw}.items():
        monkeypatch.setenv(key, value)
    assert main(["alerts", "show", "B3:velocity"]) == 0
    out = capsys.readouterr().out
    assert "prior events counted: B0, B1, B2" in out and "case: case:U4:B3:velocity (open)" in out
    assert "parameters: weights velocity=100; thresholds medium=100" in out
    assert "signal velocity (+100): 4 checkouts (4 transactions) in 3 min" in out
    assert main(["alerts", "show", "nope"]) == 2

