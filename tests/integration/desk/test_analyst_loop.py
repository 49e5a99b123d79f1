"""The analyst's loop against the real stack: triage, suppression, re-drive, shadow rules."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.fixtures.pipeline import T0, produce, run_until_idle, stored_ids, tx_row
from txnmon.adapters.mongo import MongoStore
from txnmon.cli import main
from txnmon.core.collection_names import REJECTED, SHADOW_ALERTS, SUPPRESSED_ALERTS
from txnmon.jobs import dlq, triage

pytestmark = pytest.mark.integration


def _rules(tmp_path, text: str):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return str(path)


def test_marking_alerts_updates_rule_quality(isolated_settings, monkeypatch, capsys):
    s = isolated_settings
    produce(s, [tx_row(f"H{i}", f"U{i}", T0 + dt.timedelta(minutes=i), 60_000) for i in range(4)])
    run_until_idle(s)
    db = MongoStore(s)
    triage.mark(db, "H0:high_amount", "true_positive", "customer confirmed fraud", "ana")
    triage.mark(db, "H1:high_amount", "false_positive", "known wholesale buyer", "ana")
    for key, value in {"MONGO_DB": s.mongo_db, "TOPIC_RAW": s.topic_raw}.items():
        monkeypatch.setenv(key, value)
    assert main(["alerts", "mark", "H2:high_amount", "--as", "true_positive", "--by", "raj"]) == 0
    row = db.find_one("kpi_rule_quality", {"_id": "2025-09-30|high_amount"})
    assert (row["alerts"], row["marked"], row["true_positives"], row["false_positives"]) == (4, 3, 2, 1)
    assert triage.rule_quality(db)[0]["precision"] == pytest.approx(2 / 3)
    # a change of mind keeps the history; the alert itself is never modified
    triage.mark(db, "H1:high_amount", "true_positive", "it was fraud after all", "lee")
    disposition = db.find_one("alert_dispositions", {"_id": "H1:high_amount"})
    assert [h["disposition"] for h in disposition["history"]] == ["false_positive", "true_positive"]
    assert "disposition" not in db.find_one("alerts", {"_id": "H1:high_amount"})
    assert db.find_one("kpi_rule_quality", {"_id": "2025-09-30|high_amount"})["true_positives"] == 3
    assert main(["alerts", "mark", "nope:high_amount", "--as", "true_positive"]) == 2
    assert "no alert" in capsys.readouterr().err


def test_suppression_window_raises_one_alert_and_records_four_suppressed(settings_factory, tmp_path):
    s = settings_factory(rules_file=_rules(tmp_path, "rules:\n  velocity: {suppress_for: 30m}\n"))
    burst = [tx_row(f"B{i}", "U42", T0 + dt.timedelta(seconds=20 * i)) for i in range(8)]
    produce(s, burst)
    run_until_idle(s)
    assert stored_ids(s, "alerts") == ["B3:velocity"]
    suppressed = MongoStore(s).find(SUPPRESSED_ALERTS)
    assert sorted(a["_id"] for a in suppressed) == [f"B{i}:velocity" for i in range(4, 8)]
    assert {a["suppressed_by"] for a in suppressed} == {"B3:velocity"}


def test_rejected_event_redriven_after_a_fix_is_stored_once(settings_factory):
    strict = settings_factory(max_message_bytes=300)
    big = {**tx_row("R1", "U1", T0), "note": "x" * 400}
    produce(strict, [big, tx_row("R2", "U1", T0 + dt.timedelta(minutes=1))])
    run_until_idle(strict)
    assert stored_ids(strict, "transactions") == ["R2"]
    rejected = dlq.list_rejected(strict, reason="too_large")
    assert len(rejected) == 1 and bytes(rejected[0]["original"]) == json.dumps(big).encode()
    assert rejected[0]["stage"] == "validate" and rejected[0]["source"]["topic"] == strict.topic_raw

    fixed = strict.model_copy(update={"max_message_bytes": 65536})  # the fix: a larger limit
    first = dlq.redrive(fixed, "too_large")
    assert (first.selected, first.sent) == (1, 1)
    run_until_idle(fixed)
    assert stored_ids(fixed, "transactions") == ["R1", "R2"]
    second = dlq.redrive(fixed, "too_large")
    assert (second.sent, second.already_redriven) == (0, 1)
    run_until_idle(fixed)
    assert stored_ids(fixed, "transactions") == ["R1", "R2"]
    assert MongoStore(fixed).count(REJECTED) == 1
    # the re-drive that sent something left one audit entry; the one that sent nothing left none
    (entry,) = MongoStore(fixed).find("audit_log", {"action": "dlq.redrive"})
    assert entry["after"]["sent"] == 1 and entry["after"]["ids"] == [rejected[0]["_id"]]


def test_shadow_rule_hits_appear_only_as_shadow_alerts(settings_factory, tmp_path):
    s = settings_factory(rules_file=_rules(tmp_path, "rules:\n  high_amount: {threshold: 10000, mode: shadow}\n"))
    produce(s, [tx_row("S1", "U1", T0, 20_000), tx_row("S2", "U2", T0, 500)])
    run_until_idle(s)
    db = MongoStore(s)
    assert stored_ids(s, "alerts") == []
    assert [a["_id"] for a in db.find(SHADOW_ALERTS)] == ["S1:high_amount"]
    assert db.find_one("transactions", {"_id": "S1"})["alert_flag"] is False


def test_time_bounded_replay_adds_nothing_and_leaves_live_offsets_alone(isolated_settings):
    from tests.fixtures.pipeline import synthetic_rows
    from txnmon.adapters import kafka
    from txnmon.jobs.window_replay import replay_window

    s = isolated_settings
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    rows = synthetic_rows(1_500, users=80, seed=31)
    produce(s, rows)
    run_until_idle(s)
    committed = kafka.committed_offsets(s, s.consumer_group, s.topic_raw)
    assert sum(committed.values()) == 1_500
    alerts = stored_ids(s, "alerts")
    done = replay_window(s, before, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5))
    assert done.messages == 1_500 and done.new_transactions == 0 and done.already_stored == 1_500
    assert stored_ids(s, "alerts") == alerts
    assert kafka.committed_offsets(s, s.consumer_group, s.topic_raw) == committed
    empty = replay_window(s, before - dt.timedelta(days=2), before - dt.timedelta(days=1))
    assert empty.messages == 0


def test_rule_quality_by_severity_and_on_labelled_data_match_the_backtest(isolated_settings, tmp_path):
    """A replayed generated day: the rule-quality view's labelled tables say what `txnmon backtest`
    says of the same file, and dispositions are counted per severity."""
    from zoneinfo import ZoneInfo

    from txnmon.adapters.mongo import MongoStore as Store
    from txnmon.core.backtest import run_backtest
    from txnmon.core.rules import load_rules
    from txnmon.jobs import replay
    from txnmon.jobs.backtest import load_transactions
    from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

    s = isolated_settings
    data = tmp_path / "day.csv"
    write_csv(generate(GeneratorSpec(rows=2_000, users=600, fraud_rate=0.05, seed=4)), data)
    replay.replay_csv(s, data)
    run_until_idle(s)
    db = Store(s)
    txs, _ = load_transactions(data, ZoneInfo(s.txnmon_timezone))
    offline = run_backtest(txs, load_rules(s.rules_file))

    report = triage.labelled_quality(db)
    assert {p["pattern"]: (p["incidents"], p["caught"]) for p in report["patterns"]} == {
        p: (r["incidents"], r["caught"]) for p, r in offline.recall_by_pattern.items()}
    assert {b["behaviour"]: (b["transactions"], b["false_alerts"]) for b in report["behaviours"]} == {
        b: (r["transactions"], r["false_alerts"]) for b, r in offline.false_by_behaviour.items()}
    assert report["overall"][0]["transactions"] == offline.clean_transactions

    alerts = db.find("alerts")
    high = next(a for a in alerts if a["severity"] == "high")
    medium = next(a for a in alerts if a["severity"] == "medium")
    triage.mark(db, high["_id"], "false_positive", "test", "ana")
    triage.mark(db, medium["_id"], "true_positive", "test", "ana")
    by = {r["severity"]: r for r in triage.severity_quality(db)}
    assert sum(r["alerts"] for r in by.values()) == len(alerts)
    assert (by["high"]["false_positives"], by["high"]["false_share"]) == (1, 1.0)
    assert (by["medium"]["true_positives"], by["medium"]["false_share"]) == (1, 0.0)
