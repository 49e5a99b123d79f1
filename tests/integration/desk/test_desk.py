"""The analyst's desk against the real MongoDB-wire server: cases, lists and the audit trail
through the store, the jobs and the `txnmon` CLI (the processor's part is in test_desk_stream.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from txnmon.adapters.mongo import ListsRepository, MongoStore
from txnmon.cli import main
from txnmon.core.batch import BatchResult
from txnmon.core.collection_names import ALERT_DISPOSITIONS, ALERTS, AUDIT_LOG, CASES, RULE_VERSIONS
from txnmon.jobs import audit, cases, lists, triage
from txnmon.jobs.lists import record_rules_version
from txnmon.pipeline.case_sink import CasesSink

pytestmark = pytest.mark.integration

T0 = dt.datetime(2025, 9, 30, 10, 0, tzinfo=dt.UTC)
WINDOW = dt.timedelta(hours=1)


def _alert(tid: str, user: str, minutes: int, rule: str = "velocity", amount: float = 700.0) -> dict:
    t = T0 + dt.timedelta(minutes=minutes)
    return {"_id": f"{tid}:{rule}", "alert_id": f"{tid}:{rule}", "transaction_id": tid, "user_id": user,
            "rule": rule, "severity": "medium", "reason": "test", "amount": amount, "location": "Pune",
            "event_time": t, "created_at": t, "rules_version": "v", "mode": "live"}


@pytest.fixture
def desk(isolated_settings, monkeypatch):
    s = isolated_settings
    for key, value in {"MONGO_DB": s.mongo_db, "TOPIC_RAW": s.topic_raw}.items():
        monkeypatch.setenv(key, value)
    store = MongoStore(s)
    store.ensure_indexes()
    return store


def _write(store: MongoStore, alerts: list[dict]) -> None:
    store.insert_missing(ALERTS, alerts)
    CasesSink(store, WINDOW).write(BatchResult(alerts=alerts))


def test_case_sink_groups_by_user_and_window_and_is_idempotent(desk):
    first = [_alert("A1", "U1", 0), _alert("A2", "U1", 5), _alert("B1", "U2", 1, "high_amount", 60_000)]
    _write(desk, first)
    _write(desk, first)  # redelivered
    _write(desk, [_alert("A3", "U1", 30), _alert("A4", "U1", 61)])
    docs = {d["_id"]: d for d in desk.find(CASES)}
    assert sorted(docs) == ["case:U1:A1:velocity", "case:U1:A4:velocity", "case:U2:B1:high_amount"]
    assert docs["case:U1:A1:velocity"]["alert_ids"] == ["A1:velocity", "A2:velocity", "A3:velocity"]
    rows = cases.list_cases(desk, now=T0 + WINDOW)
    assert rows[0]["_id"] == "case:U2:B1:high_amount" and rows[0]["amount_at_risk"] == 60_000
    assert {r["_id"]: r["amount_at_risk"] for r in rows}["case:U1:A1:velocity"] == 2100


def test_cli_works_a_case_and_each_action_leaves_one_audit_entry(desk, capsys):
    _write(desk, [_alert("A1", "U1", 0), _alert("A2", "U1", 5)])
    cid = "case:U1:A1:velocity"
    assert main(["cases", "list"]) == 0
    assert cid in capsys.readouterr().out
    assert main(["cases", "assign", cid, "ana", "--by", "lead"]) == 0
    assert main(["cases", "note", cid, "called the customer", "--by", "ana"]) == 0
    assert main(["cases", "close", cid, "--as", "fraud_confirmed", "--by", "ana"]) == 0
    assert main(["cases", "show", cid]) == 0
    out = capsys.readouterr().out
    assert "closed (fraud_confirmed)" in out and "called the customer" in out
    case = desk.find_one(CASES, {"_id": cid})
    assert (case["status"], case["assignee"], case["resolution"]) == ("closed", "ana", "fraud_confirmed")
    trail = audit.entries(desk, target=cid)
    assert sorted(e["action"] for e in trail) == ["case.assign", "case.close", "case.note"]
    close = next(e for e in trail if e["action"] == "case.close")
    assert (close["before"]["status"], close["after"]["status"], close["who"]) == ("investigating", "closed", "ana")
    # closing as fraud labelled both alerts, and kpi_rule_quality learned from it
    marks = desk.find(ALERT_DISPOSITIONS, {})
    assert sorted((m["_id"], m["disposition"]) for m in marks) == [("A1:velocity", "true_positive"),
                                                                  ("A2:velocity", "true_positive")]
    quality = desk.find_one("kpi_rule_quality", {"_id": "2025-09-30|velocity"})
    assert (quality["marked"], quality["true_positives"]) == (2, 2)
    # a closed case cannot be closed again: a clear message, exit 2, no new audit entry
    assert main(["cases", "close", cid, "--as", "legitimate"]) == 2
    assert "closed already" in capsys.readouterr().err
    assert desk.count(AUDIT_LOG, {"target": cid}) == 3


def test_bad_arguments_exit_2_with_a_message(desk, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["cases", "close", "c1", "--as", "maybe"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["cases", "show", "nope"]) == 2
    assert "no case 'nope'" in capsys.readouterr().err
    assert main(["lists", "add", "trusted_users", "U1", "--rule", "velocity", "--reason", "VIP",
                 "--expires", "200d"]) == 2
    assert "at most 180 days" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["lists", "add", "blocked_users", "U1", "--reason", "x", "--expires", "soon"])
    assert exc.value.code == 2
    assert desk.count(AUDIT_LOG) == 0


def test_lists_and_rule_versions_are_audited_once(desk, capsys, tmp_path):
    repo = ListsRepository(desk)
    assert repo.change_mark() == 0
    assert main(["lists", "add", "trusted_users", "U7", "--rule", "velocity", "--reason", "payroll batch",
                 "--expires", "30d", "--by", "ana"]) == 0
    assert main(["lists", "add", "risky_locations", "Lagos", "--reason", "fraud ring", "--by", "ana"]) == 0
    assert main(["lists", "remove", "risky_locations", "lagos", "--by", "raj"]) == 0
    assert main(["lists", "remove", "risky_locations", "lagos"]) == 2
    # each change moved the mark the processor reads before reloading the entries; the refused one did not
    assert repo.change_mark() == 3
    live = ListsRepository(desk).live_entries()
    assert [e["_id"] for e in live] == ["trusted_users:u7:velocity"]
    assert [e["_id"] for e in lists.entries(desk, include_inactive=True)] == ["risky_locations:lagos",
                                                                              "trusted_users:u7:velocity"]
    actions = sorted((e["action"], e["target"], e["who"]) for e in desk.find(AUDIT_LOG))
    assert actions == [("list.add", "risky_locations:lagos", "ana"), ("list.add", "trusted_users:u7:velocity", "ana"),
                       ("list.remove", "risky_locations:lagos", "raj")]
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: t1\nrules:\n  velocity:\n    max_transactions: 5\n")
    from txnmon.core.rules import load_rules
    version = load_rules(rules).version
    assert record_rules_version(desk, version, rules) and record_rules_version(desk, version, rules)
    assert desk.find_one(RULE_VERSIONS, {"_id": version})["text"] == rules.read_text()
    assert desk.count(AUDIT_LOG, {"action": "rules.loaded"}) == 1
    assert not record_rules_version(desk, "other+0000000000", rules)


def test_a_triage_mark_leaves_one_audit_entry_with_before_and_after(desk):
    desk.insert_missing(ALERTS, [_alert("A1", "U1", 0)])
    triage.mark(desk, "A1:velocity", "true_positive", "confirmed", "ana")
    triage.mark(desk, "A1:velocity", "false_positive", "changed my mind", "raj")
    first, second = sorted(audit.entries(desk, target="A1:velocity"), key=lambda e: e["at"])
    assert (first["action"], first["who"], first["before"], first["after"]["disposition"]) == (
        "alert.mark", "ana", None, "true_positive")
    assert (second["who"], second["before"]["disposition"], second["after"]["disposition"]) == (
        "raj", "true_positive", "false_positive")
    assert desk.count(AUDIT_LOG) == 2
