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
