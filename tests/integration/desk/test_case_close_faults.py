"""A case close is never half-applied nor unaudited, and an alert that reaches a case closed
meanwhile reopens it (issue 27, item 18): failures injected between the steps, against the real
MongoDB-wire server."""

from __future__ import annotations

import datetime as dt

import pytest

from txnmon.adapters.mongo import CasesRepository, MongoStore
from txnmon.core.batch import BatchResult
from txnmon.core.cases import assign_cases
from txnmon.core.collection_names import ALERT_DISPOSITIONS, ALERTS, AUDIT_LOG, CASES
from txnmon.errors import StoreUnavailable
from txnmon.jobs import cases
from txnmon.pipeline.case_sink import CasesSink, case_write

pytestmark = pytest.mark.integration

T0 = dt.datetime(2025, 9, 30, 10, 0, tzinfo=dt.UTC)
WINDOW = dt.timedelta(hours=1)


def _alert(tid: str, minutes: int, user: str = "U1") -> dict:
    t = T0 + dt.timedelta(minutes=minutes)
    return {"_id": f"{tid}:velocity", "alert_id": f"{tid}:velocity", "transaction_id": tid, "user_id": user,
            "rule": "velocity", "severity": "medium", "reason": "test", "amount": 700.0, "location": "Pune",
            "event_time": t, "created_at": t, "rules_version": "v", "mode": "live"}


@pytest.fixture
def store(isolated_settings):
    s = MongoStore(isolated_settings)
    s.ensure_indexes()
    return s


def _write(store: MongoStore, alerts: list[dict]) -> str:
    store.insert_missing(ALERTS, alerts)
    CasesSink(store, WINDOW).write(BatchResult(alerts=alerts))
    [case] = store.find(CASES, {"user_id": alerts[0]["user_id"]}, sort=[("opened_at", -1)], limit=1)
    return case["_id"]


def _fail_once(monkeypatch, name: str) -> None:
    real = getattr(CasesRepository, name)
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise StoreUnavailable(f"injected: the store went away before {name}")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(CasesRepository, name, flaky)


@pytest.mark.parametrize("fails", ["label_alerts", "clear_pending_close"])
def test_a_close_interrupted_between_its_steps_is_finished_once_with_its_audit_entry(store, monkeypatch, fails):
    case_id = _write(store, [_alert("A1", 0), _alert("A2", 5)])
    _fail_once(monkeypatch, fails)
    with pytest.raises(StoreUnavailable):
        cases.close(store, case_id, "fraud_confirmed", by="ana", reason="called the bank")
    # the close is written whole or not at all: the case is closed and says what is left to do
    case = store.find_one(CASES, {"_id": case_id})
    assert case["status"] == "closed" and case["pending_close"]["by"] == "ana"
    # the analyst retries: the interrupted close is finished first, then this one is refused
    with pytest.raises(cases.core.CaseError, match="closed already"):
        cases.close(store, case_id, "legitimate", by="raj")
    [entry] = store.find(AUDIT_LOG, {"action": "case.close", "target": case_id})
    assert (entry["who"], entry["before"]["status"], entry["after"]["status"]) == ("ana", "open", "closed")
    assert entry["after"]["resolution"] == "fraud_confirmed"
    assert entry["detail"] == {"alerts_labelled": 2, "disposition": "true_positive"}
    marks = store.find(ALERT_DISPOSITIONS, {}, sort=[("_id", 1)])
    assert [(m["_id"], m["disposition"], len(m["history"])) for m in marks] == [
        ("A1:velocity", "true_positive", 1), ("A2:velocity", "true_positive", 1)]
    assert "pending_close" not in store.find_one(CASES, {"_id": case_id})
    # finishing again changes nothing
    assert cases.finish_pending_closes(store) == []
    assert store.count(AUDIT_LOG, {"action": "case.close"}) == 1


def test_an_alert_for_a_case_closed_after_the_sink_read_it_reopens_the_case(store):
    case_id = _write(store, [_alert("A1", 0)])
    # the processor reads the user's cases (open) ...
    late = [_alert("A2", 10)]
    known = CasesRepository(store).of_users(["U1"], late[0]["event_time"])
    # ... an analyst closes the case ...
    cases.close(store, case_id, "legitimate", by="ana")
    # ... and the processor writes the alert into the case it read as open
    store.insert_missing(ALERTS, late)
    [change] = assign_cases(late, known, WINDOW)
    assert change.case_id == case_id
    for _ in range(2):  # redelivered: the same outcome
        CasesRepository(store).upsert([case_write(change)])
    case = store.find_one(CASES, {"_id": case_id})
    assert case["status"] == "open" and "A2:velocity" in case["alert_ids"]
    assert [r["alert_ids"] for r in case["reopens"]] == [["A2:velocity"]]
    # closed again with A2 seen: a redelivery of A2 reopens nothing
    cases.close(store, case_id, "fraud_confirmed", by="ana")
    CasesRepository(store).upsert([case_write(change)])
    CasesSink(store, WINDOW).write(BatchResult(alerts=late))
    case = store.find_one(CASES, {"_id": case_id})
    assert case["status"] == "closed" and len(case["reopens"]) == 1
    assert store.count(AUDIT_LOG, {"action": "case.close", "target": case_id}) == 2
