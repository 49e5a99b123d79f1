"""Every rule, the rules file, risk scoring and the bounded user state."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from txnmon.core.rules import Detector, RulesError, evaluate, load_rules, parse_rules, risk_score
from txnmon.core.rules.rulebook import RuleSet
from txnmon.core.rules.state import Event, UserStateStore
from txnmon.settings import DEFAULT_RULES_FILE as DEFAULT_RULES_PATH

T0 = dt.datetime(2025, 9, 30, 10, 0, tzinfo=dt.UTC)
# every single-condition rule at its built-in settings (the shipped file replaces most of them by
# typologies: tests/unit/core/test_typologies.py)
RULES = parse_rules("", "built-in defaults")
SHIPPED = load_rules(DEFAULT_RULES_PATH)


def tx(tid: str, minutes: float, *, user: str = "U1", amount: float = 100.0, location: str = "Mumbai",
       **extra: object) -> dict:
    return {"transaction_id": tid, "_id": tid, "user_id": user, "amount": amount, "location": location,
            "payment_method": "UPI", "event_time": T0 + dt.timedelta(minutes=minutes), **extra}


def run(txs: list[dict], rules: RuleSet = RULES) -> dict[str, list[str]]:
    detector = Detector(rules)
    return {t["transaction_id"]: [h.rule for h in detector.observe(t)] for t in txs}


def test_shipped_rules_file_is_valid_and_versioned():
    assert SHIPPED.rules.high_amount.threshold == 50_000 and SHIPPED.rules.high_amount.enabled
    assert not SHIPPED.rules.velocity.enabled and SHIPPED.rules.listed.enabled
    assert set(SHIPPED.typologies) == {"card_testing", "account_takeover", "high_value_new_country",
                                       "impossible_travel", "refund_abuse", "velocity"}
    assert SHIPPED.version.startswith("2+") and len(SHIPPED.version) == 12
    assert RULES.rules.velocity.max_transactions == 3 and not RULES.typologies


def test_high_amount_is_strictly_above_the_threshold():
    fired = run([tx("a", 0, amount=50_000), tx("b", 100, user="U2", amount=50_000.01)])
    assert "high_amount" not in fired["a"]
    assert fired["b"] == ["high_amount"]


def test_velocity_fires_on_the_fourth_within_the_window_only():
    burst = [tx(f"b{i}", i * 0.5) for i in range(5)]  # five in two minutes
    fired = run(burst)
    assert [("velocity" in fired[f"b{i}"]) for i in range(5)] == [False, False, False, True, True]
    spread = [tx(f"s{i}", i * 40) for i in range(6)]  # the seed's pace: ~40 minutes apart
    assert not any("velocity" in r for r in run(spread).values())


def test_velocity_uses_event_time_not_arrival_order():
    burst = [tx(f"b{i}", i * 0.5) for i in range(5)]
    # in reverse arrival, each one is judged only on what came before it in event time: nothing yet
    assert not any("velocity" in r for r in run(list(reversed(burst))).values())
    # arriving late, b4 is judged on what happened before it in event time
    late_first = run([burst[4], *burst[:4]])
    assert "velocity" not in late_first["b4"]


def test_unusual_location_needs_a_settled_pattern():
    history = [tx(f"h{i}", i * 60, location="Mumbai") for i in range(3)]
    fired = run([*history, tx("new", 400, location="Chennai")])
    assert fired["new"] == ["unusual_location"]
    roaming = [tx(f"r{i}", i * 60, location=c) for i, c in enumerate(["Mumbai", "Pune", "Delhi"])]
    assert run([*roaming, tx("new", 400, location="Chennai")])["new"] == []
    short = [tx(f"h{i}", i * 60, location="Mumbai") for i in range(2)]
    assert run([*short, tx("new", 400, location="Chennai")])["new"] == []


def test_impossible_travel_between_known_cities():
    fired = run([tx("a", 0, location="Mumbai"), tx("b", 20, location="London")])
    assert "impossible_travel" in fired["b"]
    # Mumbai -> Pune is ~120 km: 20 minutes is 360 km/h, under the limit
    assert "impossible_travel" not in run([tx("a", 0, location="Mumbai"), tx("b", 20, location="Pune")])["b"]
    # far apart in time: outside the rule's window
    assert "impossible_travel" not in run([tx("a", 0, location="Mumbai"), tx("b", 45, location="London")])["b"]


def test_impossible_travel_with_unknown_cities_uses_the_window():
    fired = run([tx("a", 0, location="Smalltown"), tx("b", 10, location="Otherville")])
    assert "impossible_travel" in fired["b"]


def test_high_value_at_unusual_location_is_high_severity():
    history = [tx(f"h{i}", i * 60, location="Delhi") for i in range(3)]
    detector = Detector(RULES)
    for t in history:
        detector.observe(t)
    hits = {h.rule: h for h in detector.observe(tx("big", 300, amount=15_000, location="Kolkata"))}
    assert set(hits) == {"unusual_location", "high_value_unusual_location"}
    assert hits["high_value_unusual_location"].severity == "high"
    assert "15,000" in hits["high_value_unusual_location"].reason


def test_excessive_refunds_and_repeated_failed_payments():
    refunds = [tx(f"r{i}", i * 60, type="refund") for i in range(3)]
    assert run(refunds)["r2"] == ["excessive_refunds"]
    assert run(refunds[:2])["r1"] == []
    failures = [tx(f"f{i}", i * 5, status="failed") for i in range(3)]
    assert run(failures)["f2"] == ["repeated_failed_payments"]
    mixed = [tx("f0", 0, status="failed"), tx("ok", 5), tx("f1", 10, status="failed")]
    assert "repeated_failed_payments" not in run(mixed)["f1"]


def test_redelivered_transaction_gets_the_same_hits_and_is_not_double_counted():
    detector = Detector(RULES)
    burst = [tx(f"b{i}", i * 0.5) for i in range(4)]
    first = [detector.observe(t) for t in burst]
    again = [detector.observe(t) for t in burst]
    assert first == again
    assert len(detector.state.get("U1")) == 4


def test_state_rebuilt_from_history_gives_the_same_alerts():
    burst = [tx(f"b{i}", i * 0.5) for i in range(5)]
    live = run(burst)
    first = Detector(RULES)
    for t in burst[:3]:
        first.observe(t)
    restarted = Detector(RULES)
    restarted.import_state(first.export_state(["U1"]))  # what MongoDB held when the process restarted
    assert [h.rule for h in restarted.observe(burst[3])] == live["b3"]
    assert [h.rule for h in restarted.observe(burst[4])] == live["b4"]


def test_disabled_rule_never_fires_and_thresholds_come_from_the_file():
    rules = parse_rules("rules:\n  high_amount: {threshold: 100}\n  velocity: {enabled: false}\n")
    fired = run([tx(f"b{i}", i * 0.1, amount=500) for i in range(6)], rules)
    assert Counter(r for rs in fired.values() for r in rs) == {"high_amount": 6}


@pytest.mark.parametrize(("text", "message"), [
    ("rules:\n  velocity: {window: soon}\n", "rules.velocity.window"),
    ("rules:\n  velocity: {max_transactions: 0}\n", "rules.velocity.max_transactions"),
    ("rules:\n  high_amount: {treshold: 5}\n", "unknown setting"),
    ("rules:\n  new_rule: {}\n", "rules.new_rule"),
    ("rules:\n  high_amount: {severity: critical}\n", "rules.high_amount.severity"),
    ("rules: [1, 2\n", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping"),
])
def test_invalid_rules_files_are_refused_with_the_path(text, message):
    with pytest.raises(RulesError, match=message.replace(".", r"\.") if "rules." in message else message):
        parse_rules(text)


def test_missing_rules_file(tmp_path):
    with pytest.raises(RulesError, match="cannot read rules file"):
        load_rules(tmp_path / "nope.yaml")


def test_risk_score_combines_evidence():
    detector = Detector(RULES)
    assert risk_score([]) == 0
    hits = detector.observe(tx("x", 0, amount=60_000))
    assert risk_score(hits) == 60
    from txnmon.core.rules import Hit

    assert risk_score([Hit("a", "high", 60, ""), Hit("b", "high", 50, "")]) == 80


def test_evaluate_matches_detector():
    prior = [Event(T0 + dt.timedelta(minutes=i), f"p{i}", "Mumbai", 1.0, "purchase", "success") for i in range(3)]
    now = Event(T0 + dt.timedelta(minutes=3), "n", "Mumbai", 1.0, "purchase", "success")
    assert [h.rule for h in evaluate(now, prior, RULES)] == ["velocity"]


def test_state_evicts_least_recent_users_past_the_cap():
    store = UserStateStore(max_users=3, max_events_per_user=10, horizon=dt.timedelta(hours=1))
    for i in range(5):
        store.record(f"U{i}", Event(T0, f"t{i}", "X", 1.0, "purchase", "success"))
    assert len(store) == 3 and "U0" not in store and "U4" in store
    assert store.evicted == 2


def test_state_evicts_users_idle_past_the_horizon_in_event_time():
    store = UserStateStore(max_users=100, max_events_per_user=10, horizon=dt.timedelta(hours=1))
    store.record("old", Event(T0, "t1", "X", 1.0, "purchase", "success"))
    store.record("new", Event(T0 + dt.timedelta(hours=2), "t2", "X", 1.0, "purchase", "success"))
    assert store.evict_idle() == 1
    assert "old" not in store and "new" in store


def test_state_keeps_at_most_n_events_per_user_and_drops_old_ones():
    store = UserStateStore(max_users=10, max_events_per_user=5, horizon=dt.timedelta(minutes=30))
    for i in range(20):
        store.record("U", Event(T0 + dt.timedelta(minutes=i), f"t{i}", "X", 1.0, "purchase", "success"))
    history = store.get("U")
    assert len(history) == 5
    assert [e.transaction_id for e in history.events] == [f"t{i}" for i in range(15, 20)]
    store.record("U", Event(T0 + dt.timedelta(minutes=100), "late", "X", 1.0, "purchase", "success"))
    assert [e.transaction_id for e in store.get("U").events] == ["late"]


def test_suppression_folds_repeats_into_the_first_alert_in_event_time():
    rules = parse_rules("rules:\n  velocity: {suppress_for: 30m}\n")
    detector = Detector(rules)
    burst = [tx(f"b{i}", i * 0.5) for i in range(8)]  # velocity fires on b3..b7: five hits
    hits = [h for t in burst for h in detector.observe(t) if h.rule == "velocity"]
    assert len(hits) == 5
    assert [h.suppressed_by for h in hits] == [None, "b3:velocity", "b3:velocity", "b3:velocity", "b3:velocity"]
    # after the window, the next hit is raised again
    later = [tx(f"c{i}", 60 + i * 0.5) for i in range(4)]
    again = [h for t in later for h in detector.observe(t) if h.rule == "velocity"]
    assert again[-1].suppressed_by is None


def test_suppression_state_is_restored_from_stored_alerts():
    rules = parse_rules("rules:\n  velocity: {suppress_for: 30m}\n")
    burst = [tx(f"b{i}", i * 0.5) for i in range(6)]
    live = Detector(rules)
    for t in burst[:4]:
        live.observe(t)
    restarted = Detector(rules)
    restarted.import_state(live.export_state(["U1"]))  # what the user_state collection holds
    assert restarted.observe(burst[4])[0].suppressed_by == "b3:velocity"
    assert Detector(rules).observe(burst[4]) == []  # without the state, b4 alone trips nothing


def test_shadow_rules_are_evaluated_but_marked_shadow():
    rules = parse_rules("rules:\n  high_amount: {threshold: 1000, mode: shadow}\n")
    hits = Detector(rules).observe(tx("s", 0, amount=5_000))
    assert [(h.rule, h.mode) for h in hits] == [("high_amount", "shadow")]


def test_a_yaml_error_names_the_position_and_never_echoes_the_file():
    secret = "password: hunter2-do-not-log"
    with pytest.raises(RulesError) as caught:
        parse_rules(f"rules:\n  velocity: {{window: 10m\n  {secret}\n", "candidate.yaml")
    message = str(caught.value)
    assert "candidate.yaml: not valid YAML at line" in message
    assert "hunter2" not in message and "velocity" not in message
    with pytest.raises(RulesError) as caught:
        parse_rules("rules:\n  velocity: {window: hunter2}\n")
    assert "hunter2" not in str(caught.value) and "rules.velocity.window" in str(caught.value)
