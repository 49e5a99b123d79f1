"""Alerts explain themselves: the rule's parameters and the ids of the prior events counted."""

from __future__ import annotations

import datetime as dt

from txnmon.core.rules import Detector, alert_document
from txnmon.core.rules.rulebook import parse_rules

T0 = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)


def tx(tid: str, minutes: float, location: str = "Mumbai", amount: float = 100.0, **extra) -> dict:
    return {"_id": tid, "transaction_id": tid, "user_id": "u1", "amount": amount, "location": location,
            "payment_method": "UPI", "event_time": T0 + dt.timedelta(minutes=minutes), **extra}


def hits_of(rows: list[dict]) -> dict:
    d = Detector(parse_rules(""))
    return {(r["_id"], h.rule): h for r in rows for h in d.observe(r)}


def test_velocity_names_the_burst_it_counted_and_its_parameters():
    rows = [tx("old", 0)] + [tx(f"b{i}", 30 + i) for i in range(4)]
    hit = hits_of(rows)[("b3", "velocity")]
    why = hit.explanation
    assert why["counted"] == ["b0", "b1", "b2"]  # "old" is outside the 10-minute window
    assert why["params"]["max_transactions"] == 3 and why["params"]["window"] == "PT10M"
    assert why["measured"]["transactions"] == 4
    doc = alert_document(rows[-1], hit, created_at=T0, rules_version="v1")
    assert doc["explanation"] == why


def test_impossible_travel_names_the_previous_event_and_distance():
    hit = hits_of([tx("a", 0, "Mumbai"), tx("b", 10, "London")])[("b", "impossible_travel")]
    m = hit.explanation["measured"]
    assert hit.explanation["counted"] == ["a"]
    assert m["previous_location"] == "Mumbai" and m["distance_km"] > 7000 and m["gap_s"] == 600


def test_refunds_count_only_refunds():
    rows = [tx("p", 0), tx("r1", 1, type="refund"), tx("r2", 2, type="refund"), tx("r3", 3, type="refund")]
    assert hits_of(rows)[("r3", "excessive_refunds")].explanation["counted"] == ["r1", "r2"]


def test_explanations_do_not_change_equality_of_hits():
    a, b = hits_of([tx("x", 0, amount=60_000)])[("x", "high_amount")], hits_of([tx("x", 0, amount=60_000)])[
        ("x", "high_amount")]
    assert a == b and a.explanation["measured"] == {"amount": 60_000}


def test_an_alert_lists_a_bounded_number_of_counted_ids_whatever_a_user_sends():
    """Issue #27 item 1: 180 purchases in 10 minutes with the longest ids the contract allows make a
    velocity alert (rule and typology) that lists at most MAX_LISTED ids, with the exact count."""
    import bson

    from txnmon.core.rules import load_rules
    from txnmon.core.rules.evidence import MAX_LISTED
    from txnmon.settings import PACKAGE_DATA

    detector = Detector(load_rules(PACKAGE_DATA / "rules" / "rules.yaml"))
    rows = [tx(f"{i:04d}" + "x" * 124, i * 3 / 60, payment_method=f"card{i}") for i in range(180)]
    hits = [h for r in rows for h in detector.observe(r)]
    last = [h for h in detector.observe(tx("z" * 128, 9.5)) if h.explanation and h.explanation["counted"]]
    assert hits and last
    for hit in last:
        why = hit.explanation
        assert len(why["counted"]) <= MAX_LISTED and why["counted_total"] >= 150, hit.rule
        assert why["counted"] == sorted(why["counted"])[-len(why["counted"]):]  # the newest, oldest first
        for signal in why.get("signals", ()):
            assert len(signal["counted"]) <= MAX_LISTED
            assert all(len(v) <= MAX_LISTED for v in signal["measured"].values() if isinstance(v, list))
        size = len(bson.encode(alert_document(rows[-1], hit, created_at=T0, rules_version="v1")))
        assert size < 64 * 1024, (hit.rule, size)
