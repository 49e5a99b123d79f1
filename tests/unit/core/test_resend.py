"""Re-sends (#27 item 2): a transaction judged in an earlier batch is not judged again, and the pure
decisions about stored copies (core.resend)."""

from __future__ import annotations

import datetime as dt
import json

from txnmon.core.batch import BatchConfig, process_batch
from txnmon.core.records import DUPLICATE_ID_CONFLICT, SourceRecord
from txnmon.core.resend import same_event, sort_stored
from txnmon.core.rules import Detector, parse_rules
from txnmon.core.rules.state import Event
from txnmon.settings import load_settings

NOW = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)
CONFIG = BatchConfig.from_settings(load_settings(metrics_port=0))
T0 = dt.datetime(2025, 9, 30, 10, 0, tzinfo=dt.UTC)


def record(offset: int, tid: str, minute: int = 0, amount: float = 100, user: str = "U1") -> SourceRecord:
    row = {"transaction_id": tid, "user_id": user, "amount": amount, "payment_method": "UPI",
           "location": "Mumbai", "timestamp": f"2025-09-30T10:{minute:02d}:00Z"}
    return SourceRecord("transactions.by_user", 0, offset, user.encode(), json.dumps(row).encode(), 0)


def run(records, detector):
    return process_batch(records, detector, CONFIG, now=NOW, load_state=lambda users: {})


def test_an_identical_resend_in_a_later_batch_raises_nothing_and_leaves_the_state_alone():
    # the built-in velocity rule counts rows: four at one minute trip it on the fourth. Judged again, the
    # first of them would see the three others (same event time, arrived before the re-send): a new alert
    detector = Detector(parse_rules("", "built-in rules"))
    burst = [record(i, f"B{i}") for i in range(4)]
    first = run(burst, detector)
    assert [a["_id"] for a in first.alerts] == ["B3:velocity"]
    state = detector.export_state(["U1"])
    again = run([record(10 + i, f"B{i}") for i in range(4)], detector)
    assert again.transactions == [] and again.alerts == [] and again.enriched == [] and again.dlq == []
    assert sorted(again.resent) == ["B0", "B1", "B2", "B3"] and again.judgements == {}
    assert detector.export_state(["U1"]) == state


def test_other_content_under_an_id_in_the_history_is_a_conflict_in_a_later_batch():
    detector = Detector(parse_rules("", "built-in rules"))
    run([record(0, "T1", amount=100)], detector)
    state = detector.export_state(["U1"])
    again = run([record(1, "T1", amount=999), record(2, "T2", minute=1)], detector)
    assert [d["_id"] for d in again.transactions] == ["T2"]
    assert [d["reason"] for d in again.rejected] == [DUPLICATE_ID_CONFLICT]
    assert again.rejected[0]["source"]["offset"] == 1 and again.resent == {}
    assert [e.transaction_id for e in detector.state.get("U1").events] == ["T1", "T2"]
    assert detector.export_state(["U1"])["U1"]["events"][0] == state["U1"]["events"][0]


def event(payment_method: str = "UPI", amount: float = 1.0) -> Event:
    return Event(T0, "T1", "Mumbai", amount, "purchase", "success", payment_method)


def test_same_event_compares_the_rule_fields_and_tolerates_histories_without_payment_methods():
    assert same_event(event(), event())
    assert not same_event(event(amount=2.0), event())
    assert same_event(event("UPI"), event(""))  # kept before payment methods were: unknown, not different
    assert not same_event(event("UPI"), event("Card"))


def doc(tid: str, fingerprint: str | None, offset: int, judged_at: int | None = None) -> dict:
    out = {"_id": tid, "source": {"topic": "raw", "partition": 0, "offset": offset}}
    if fingerprint is not None:
        out["content_hash"] = fingerprint
    if judged_at is not None:
        out["judged_at"] = {"topic": "by_user", "partition": 0, "offset": judged_at}
    return out


def test_stored_copies_are_sorted_into_redos_resends_and_conflicts():
    ours = {"REDO": doc("REDO", "a", 1, 11), "RESENT": doc("RESENT", "b", 2, 12),
            "REKEYED": doc("REKEYED", "c", 3, 13), "OTHER": doc("OTHER", "d", 4, 14), "OLD": doc("OLD", "e", 5)}
    stored = [doc("REDO", "a", 1, 11),  # the same message, written before a crash: written again
              doc("RESENT", "b", 9, 19),  # the same content from another raw message: a re-send
              doc("REKEYED", "c", 3, 99),  # the raw message re-keyed again (a new group): a re-send too
              doc("OTHER", "x", 4, 14),  # other content: a conflict
              doc("OLD", None, 5),  # stored before fingerprints: nothing to compare
              doc("UNJUDGED", "f", 7), doc("UNJUDGED2", "y", 8)]
    copies = sort_stored(ours, stored, {"UNJUDGED": "f", "UNJUDGED2": "g"})
    assert copies.conflicts == ["OTHER", "UNJUDGED2"]
    assert copies.resent == ["RESENT", "REKEYED"]
    assert copies.known == 5


def test_the_first_passes_by_user_record_judged_to_another_verdict_is_a_resend_not_a_redo():
    # a new consumer group reads the first pass's by-user records at their stored positions; one whose
    # event left its user's history is judged against the events after it (a velocity alert it never had)
    verdict = {"alert_reasons": [], "risk_score": 0, "late": False}
    stored = [{**doc("AGED", "a", 1, 11), **verdict}, {**doc("REDO", "b", 2, 12), **verdict}]
    ours = {"AGED": {**doc("AGED", "a", 1, 11), **verdict, "alert_reasons": ["velocity"], "risk_score": 40},
            "REDO": {**doc("REDO", "b", 2, 12), **verdict}}
    copies = sort_stored(ours, stored, {})
    assert copies.resent == ["AGED"] and copies.known == 2 and copies.conflicts == []


def test_a_redo_judged_with_another_model_is_still_the_same_delivery():
    # issue 32: the batch's first attempt was scored by rm-1, its retry after a crash by rm-2 (a promotion
    # meanwhile) or by none (the watcher not loaded yet): the verdicts differ, but it is the same message at
    # the same by-user position, so the transaction stays stored, in its user's history and on the topic
    first = {"alert_reasons": ["learned_risk"], "risk_score": 100, "late": False,
             "model": {"version": "rm-1", "score": 0.93}}
    stored = [{**doc("A", "a", 1, 11), **first}, {**doc("B", "b", 2, 12), **first}]
    ours = {"A": {**doc("A", "a", 1, 11), **first, "alert_reasons": [], "risk_score": 0,
                  "model": {"version": "rm-2", "score": 0.1}},
            "B": {**doc("B", "b", 2, 12), **first, "alert_reasons": [], "risk_score": 0}}
    del ours["B"]["model"]
    copies = sort_stored(ours, stored, {})
    assert copies.resent == [] and copies.known == 2 and copies.conflicts == []
