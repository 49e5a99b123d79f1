"""Signals and typologies: weighted signals summed against thresholds, in event time."""

from __future__ import annotations

import datetime as dt

import pytest

from txnmon.core.rules import Detector, RulesError, alert_document, load_rules, parse_rules
from txnmon.core.rules.evidence import checkouts
from txnmon.core.rules.state import Event
from txnmon.settings import DEFAULT_RULES_FILE

T0 = dt.datetime(2025, 10, 1, 9, 0, tzinfo=dt.UTC)
SHIPPED = load_rules(DEFAULT_RULES_FILE)


def tx(tid: str, minutes: float, *, user: str = "U1", amount: float = 1_000.0, location: str = "Mumbai",
       method: str = "UPI", **extra: object) -> dict:
    return {"transaction_id": tid, "_id": tid, "user_id": user, "amount": amount, "location": location,
            "payment_method": method, "event_time": T0 + dt.timedelta(minutes=minutes), **extra}


def run(txs: list[dict], rules=SHIPPED) -> dict[str, dict[str, str]]:
    """transaction -> {alert name: severity}"""
    detector = Detector(rules)
    return {t["transaction_id"]: {h.rule: h.severity for h in detector.observe(t)} for t in txs}


HOME = [tx(f"h{i}", i * 60, amount=1_000 + 100 * i) for i in range(4)]  # four purchases in Mumbai with UPI


def test_a_plausible_trip_is_not_an_alert_but_an_impossible_one_is():
    trip = run([*HOME, tx("away", 4 * 60 + 3 * 60 + 180, location="Delhi")])  # 1,150 km, 3 h after the last
    assert trip["away"] == {}
    flight = run([*HOME, tx("away", 4 * 60 - 60 + 40, location="Delhi")])  # 1,150 km in 40 minutes
    assert flight["away"] == {"impossible_travel": "high"}
    abroad = run([*HOME, tx("abroad", 3 * 60 + 5, location="London")])
    assert abroad["abroad"] == {"impossible_travel": "high"}


def test_the_quick_way_back_home_after_an_odd_transaction_is_a_return_not_a_second_alert():
    fired = run([*HOME, tx("abroad", 3 * 60 + 5, location="London"), tx("back", 3 * 60 + 20)])
    assert fired["abroad"] == {"impossible_travel": "high"} and fired["back"] == {}
    judge_every_move = SHIPPED.model_copy(update={"signals": SHIPPED.signals.model_copy(update={
        "fast_travel": SHIPPED.signals.fast_travel.model_copy(update={"usual_lookback": None})})})
    assert run([*HOME, tx("abroad", 3 * 60 + 5, location="London"), tx("back", 3 * 60 + 20)],
               judge_every_move)["back"] == {"impossible_travel": "high"}


def test_a_multi_item_checkout_is_one_purchase_and_a_burst_of_checkouts_is_velocity():
    basket = [tx(f"i{i}", 300 + i * 0.2) for i in range(4)]  # four items within a minute
    fired = run([*HOME, *basket])
    assert all(fired[f"i{i}"] == {} for i in range(4))
    burst = [tx(f"b{i}", 300 + i * 1.5, method="Credit Card") for i in range(5)]  # one every 90 s
    fired = run([*HOME, *burst])
    assert [fired[f"b{i}"].get("velocity") for i in range(5)] == [None, None, None, "medium", "medium"]


def test_checkouts_split_on_method_place_or_the_gap():
    def ev(tid: str, s: int, method: str = "UPI", place: str = "Mumbai") -> Event:
        return Event(T0 + dt.timedelta(seconds=s), tid, place, 1.0, "purchase", "success", method)
    groups = checkouts([ev("a", 0), ev("b", 30), ev("c", 59, "Wallet"), ev("d", 61), ev("e", 62, place="Pune")],
                       dt.timedelta(seconds=60))
    assert [[e.transaction_id for e in g] for g in groups] == [["a", "b"], ["c"], ["d"], ["e"]]


def test_card_testing_grades_by_what_it_sees():
    tiny = [tx(f"t{i}", 300 + i, amount=50, status="failed" if i else "success") for i in range(4)]
    fired = run([*HOME, *tiny])
    # t2: three tiny payments, two declines (not yet three) -> medium; t3: both signals -> high
    assert fired["t2"] == {"card_testing": "medium"} and fired["t3"] == {"card_testing": "high"}
    declines = [tx(f"d{i}", 300 + i, amount=3_000, status="failed") for i in range(3)]
    assert run([*HOME, *declines])["d2"] == {"card_testing": "low"}
    retried = [tx("no", 300, amount=3_000, status="failed"), tx("yes", 301, amount=3_000, method="Wallet")]
    assert run([*HOME, *retried]) == {**{h["_id"]: {} for h in HOME}, "no": {}, "yes": {}}


def test_account_takeover_needs_the_new_place_the_new_method_and_the_big_amount_together():
    big = 20_000
    fired = run([*HOME, tx("ato", 400, amount=big, location="Delhi", method="Credit Card")])
    assert fired["ato"] == {"account_takeover": "high"}
    # any two of the three are an ordinary day: a trip with a big buy, a new card at home, ...
    for name, kwargs in {"no new method": {"location": "Delhi"}, "no new place": {"method": "Credit Card"},
                         "not big": {"amount": 2_000, "location": "Delhi", "method": "Credit Card"}}.items():
        row = tx("x", 400, **{"amount": big, **kwargs})
        assert run([*HOME, row])["x"] == {}, name


def test_payment_methods_unknown_in_old_state_tell_nothing():
    """Events restored from state format 2 carry no payment method: "never used" needs known ones."""
    detector = Detector(SHIPPED)
    detector.state.preload("U1", [Event(T0 + dt.timedelta(hours=i), f"h{i}", "Mumbai", 1_000.0, "purchase",
                                        "success") for i in range(4)])
    hits = detector.observe(tx("ato", 400, amount=20_000, location="Delhi", method="Credit Card"))
    assert hits == []


def test_refund_abuse_counts_refunds_only():
    rows = [*HOME, tx("r1", 300, type="refund"), tx("p", 301), tx("r2", 302, type="refund"),
            tx("r3", 303, type="refund")]
    assert run(rows)["r3"] == {"refund_abuse": "medium"} and run(rows)["r2"] == {}


def test_a_typology_alert_explains_its_score_signal_by_signal():
    rows = [*HOME, tx("ato", 400, amount=20_000, location="Delhi", method="Credit Card")]
    detector = Detector(SHIPPED)
    hit = [h for r in rows for h in detector.observe(r)][-1]
    why = hit.explanation
    assert hit.rule == "account_takeover" and hit.score == 100 and "score 100" in hit.reason
    assert why["params"]["thresholds"] == {"high": 100} and why["measured"]["score"] == 100
    assert why["counted"] == ["h0", "h1", "h2", "h3"] and why["rules_version"] == SHIPPED.version
    by_signal = {s["signal"]: s for s in why["signals"]}
    assert set(by_signal) == {"amount_vs_usual", "new_location", "new_payment_method"}
    assert by_signal["amount_vs_usual"]["measured"]["usual_amount"] == 1_150
    assert by_signal["new_location"]["params"]["lookback"] == "P30D"
    doc = alert_document(rows[-1], hit, created_at=T0, rules_version=SHIPPED.version)
    assert doc["_id"] == "ato:account_takeover" and doc["rule"] == "account_takeover" and doc["severity"] == "high"


def test_shadow_typologies_and_suppressed_repeats():
    text = DEFAULT_RULES_FILE.read_text(encoding="utf-8")
    shadow = parse_rules(text.replace("  refund_abuse:\n    signals: {refunds: 100}",
                                      "  refund_abuse:\n    mode: shadow\n    signals: {refunds: 100}"))
    rows = [*HOME, *(tx(f"r{i}", 300 + i, type="refund") for i in range(4))]
    detector = Detector(shadow)
    hits = [h for r in rows for h in detector.observe(r)]
    assert [h.mode for h in hits] == ["shadow", "shadow"]
    quiet = parse_rules(text.replace("  refund_abuse:\n    signals: {refunds: 100}",
                                     "  refund_abuse:\n    suppress_for: 1h\n    signals: {refunds: 100}"))
    assert quiet.history_window() == dt.timedelta(days=30)
    detector = Detector(quiet)
    hits = [h for r in rows for h in detector.observe(r)]
    assert [h.suppressed_by for h in hits] == [None, "r2:refund_abuse"]


def test_a_hot_reload_switches_typologies_and_keeps_history():
    detector = Detector(parse_rules("", "v1"))
    for row in HOME:
        detector.observe(row)
    detector.use_rules(SHIPPED)
    hits = detector.observe(tx("ato", 400, amount=20_000, location="Delhi", method="Credit Card"))
    assert [h.rule for h in hits] == ["account_takeover"]


@pytest.mark.parametrize(("text", "message"), [
    ("typologies:\n  x: {signals: {no_such: 10}, thresholds: {low: 5}}\n", "typologies.x.signals.no_such"),
    ("typologies:\n  x: {signals: {refunds: 10}, thresholds: {low: 50}}\n", "can never reach"),
    ("typologies:\n  x: {signals: {refunds: 100}, thresholds: {low: 90, high: 50}}\n", "rise with severity"),
    ("typologies:\n  x: {signals: {refunds: 100}, thresholds: {low: 0, high: 50}}\n", "must be positive"),
    ("typologies:\n  x: {signals: {refunds: 100}, thresholds: {urgent: 50}}\n", "typologies.x.thresholds.urgent"),
    ("typologies:\n  velocity: {signals: {velocity: 100}, thresholds: {low: 50}}\n", "share a name"),
    ("typologies:\n  Bad-Name: {signals: {velocity: 100}, thresholds: {low: 50}}\n", "typologies.Bad-Name"),
    ("signals:\n  velocity: {checkout_gap: soon}\n", "signals.velocity.checkout_gap"),
    ("signals:\n  tiny_amount: {max_amount: 5}\n", "signals.tiny_amount: unknown setting"),
])
def test_invalid_typologies_are_refused_with_the_path(text, message):
    with pytest.raises(RulesError, match=message):
        parse_rules(text)


def test_a_typology_may_reuse_a_rules_name_once_that_rule_is_off():
    rules = parse_rules("rules:\n  velocity: {enabled: false}\n"
                        "typologies:\n  velocity: {signals: {velocity: 100}, thresholds: {medium: 100}}\n")
    assert list(rules.typologies) == ["velocity"] and rules.used_signals() == ["velocity"]


def test_every_signal_of_the_catalogue_has_a_function_and_a_cost():
    from typing import get_args

    from txnmon.core.rules.evidence import COST, SIGNALS
    from txnmon.core.rules.rulebook import SignalName, Signals

    assert set(SIGNALS) == set(COST) == set(Signals.model_fields) == set(get_args(SignalName))


def test_far_from_usual_measures_from_the_nearest_usual_place():
    rules = parse_rules("rules:\n  unusual_location: {enabled: false}\n  impossible_travel: {enabled: false}\n"
                        "  high_value_unusual_location: {enabled: false}\n"
                        "typologies:\n  overseas: {signals: {far_from_usual: 100}, thresholds: {low: 100}}\n")
    fired = run([*HOME, tx("near", 300, location="Delhi"), tx("far", 400, location="London"),
                 tx("nowhere", 500, location="Atlantis-on-Sea")], rules)  # Atlantis (ZA) is in the gazetteer
    assert fired["near"] == {} and fired["far"] == {"overseas": "low"} and fired["nowhere"] == {}
    detector = Detector(rules)
    hits = [h for r in [*HOME, tx("far", 400, location="London")] for h in detector.observe(r)]
    measured = hits[0].explanation["signals"][0]["measured"]
    assert measured["nearest_usual"] == "Mumbai" and 7_000 < measured["distance_km"] < 7_400


def test_a_place_the_gazetteer_lacks_in_another_country_is_still_too_far_for_the_time():
    # "Smallville, GB" is no city of the gazetteer, but it is in Great Britain: at least 4,000 km
    # from anywhere in India, which no plane covers in an hour
    detector = Detector(SHIPPED)
    for t in HOME:
        detector.observe(t)
    hits = detector.observe(tx("abroad", 4 * 60, location="Smallville, GB"))
    assert [h.rule for h in hits] == ["impossible_travel"]
    signal = hits[0].explanation["signals"][0]["measured"]
    assert signal["distance_exact"] is False and signal["distance_km"] > 3_000
    assert "at least" in hits[0].reason
    # a place with no city and no country: only a change within unknown_city_window is suspect
    fast = run([*HOME, tx("nowhere", 3 * 60 + 20, location="Atlantis-on-Sea")])
    assert fast["nowhere"] == {"impossible_travel": "high"}
    assert run([*HOME, tx("nowhere", 4 * 60, location="Atlantis-on-Sea")])["nowhere"] == {}


def test_the_seed_reports_case_is_medium_with_the_usual_method_and_high_with_a_new_one():
    usual = run([*HOME, tx("abroad", 16 * 60, amount=40_000, location="London")])
    assert usual["abroad"] == {"high_value_new_country": "medium"}
    new = run([*HOME, tx("abroad", 16 * 60, amount=40_000, location="London", method="Credit Card")])
    assert new["abroad"] == {"high_value_new_country": "high", "account_takeover": "high"}
    thin = run([HOME[0], tx("abroad", 14 * 60, amount=40_000, location="New York")])
    assert thin["abroad"] == {"high_value_new_country": "medium"}
    # at home, or abroad at an ordinary amount: nothing
    assert run([*HOME, tx("home", 16 * 60, amount=40_000, location="Delhi")])["home"] == {}
    assert run([*HOME, tx("abroad", 16 * 60, amount=2_000, location="London")])["abroad"] == {}
