"""Late arrivals judged in both directions (issue #28 item 3): a late event completes the pairs it
makes with later events, and the alerts of the pair typologies do not depend on the arrival order
within the lateness bound."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from txnmon.core.backtest import run_backtest
from txnmon.core.rules import Detector, load_rules
from txnmon.core.rules.engine import completed_alerts, owner_of
from txnmon.settings import DEFAULT_RULES_FILE

T0 = dt.datetime(2025, 10, 1, 9, 0, tzinfo=dt.UTC)
SHIPPED = load_rules(DEFAULT_RULES_FILE)
PAIR_TYPOLOGIES = {"impossible_travel", "velocity", "card_testing"}
LATENESS = SHIPPED.signals.fast_travel.lateness


def tx(tid: str, minutes: float, *, location: str = "Mumbai", amount: float = 1_000.0, method: str = "UPI",
       status: str = "success", user: str = "U1") -> dict:
    return {"transaction_id": tid, "_id": tid, "user_id": user, "amount": amount, "location": location,
            "payment_method": method, "status": status, "type": "purchase",
            "event_time": T0 + dt.timedelta(minutes=minutes)}


def alerts(arrivals: list[dict], rules=SHIPPED) -> set[tuple[str, str]]:
    """(transaction, typology) of every live alert, the completed ones on the transaction they are about."""
    detector, out = Detector(rules), set()
    for t in arrivals:
        judgement = detector.judge(t)
        detector.record(judgement)
        out |= {(t["transaction_id"], h.rule) for h in judgement.hits if not h.suppressed_by}
        out |= {(later.transaction_id, h.rule) for later, h in judgement.completed}
    return out


def test_a_late_purchase_at_home_completes_the_impossible_trip_on_the_purchase_abroad():
    home, abroad = tx("home", 0), tx("abroad", 40, location="London")
    in_order = alerts([home, abroad])
    assert in_order == {("abroad", "impossible_travel")}
    # the purchase at home arrives after the one abroad: before this change nothing was raised
    detector = Detector(SHIPPED)
    detector.record(detector.judge(abroad))
    late = detector.judge(home)
    assert late.hits == []
    assert [(e.transaction_id, h.rule) for e, h in late.completed] == [("abroad", "impossible_travel")]
    docs = completed_alerts(late, home, created_at=T0, rules_version=SHIPPED.version)
    assert [(d["_id"], d["transaction_id"], d["completed_by"], d["location"]) for d in docs] == [
        ("abroad:impossible_travel", "abroad", "home", "London")]
    assert owner_of(docs[0]) == "home"  # the batch drops it with the late transaction, refusals name it


def test_a_late_decline_completes_card_testing_and_a_late_checkout_completes_velocity():
    declines = [tx(f"d{i}", i * 2, amount=90.0, status="failed", method="Credit Card") for i in range(3)]
    assert ("d2", "card_testing") in alerts(declines)
    assert ("d2", "card_testing") in alerts([declines[1], declines[2], declines[0]])
    burst = [tx(f"b{i}", 30 + i * 1.5, method="Credit Card") for i in range(4)]
    assert ("b3", "velocity") in alerts(burst) and ("b3", "velocity") in alerts([*burst[1:], burst[0]])


def test_an_event_already_alerted_is_not_raised_again_and_a_pair_outside_the_window_is_not_made():
    home0, home, abroad = tx("home0", 0), tx("home", 20), tx("abroad", 40, location="London")
    detector = Detector(SHIPPED)
    for t in (home0, abroad):
        detector.record(detector.judge(t))  # abroad is already impossible after home0
    assert detector.judge(home).completed == ()
    far = Detector(SHIPPED)
    far.record(far.judge(tx("abroad", 60 * 7, location="London")))
    assert far.judge(tx("home", 0)).completed == ()  # seven hours apart: beyond the travel window


def test_the_backtest_counts_completed_alerts_on_the_transaction_they_are_about():
    rows = [dict(tx("abroad", 40, location="London"), fraud_label="impossible_travel", fraud_incident="F1"),
            dict(tx("home", 0), fraud_label="", fraud_incident="", behaviour="late_arrival")]
    result = run_backtest(rows, SHIPPED)
    assert result.alerts == {"abroad:impossible_travel"}
    assert result.recall_by_pattern["impossible_travel"]["caught"] == 1 and result.false_alerts == 0


PLACES = ["Mumbai", "Delhi", "Pune", "London", "Dubai"]


@st.composite
def days(draw):
    """A user's events over a few hours (places near and far, small amounts, some declines) and an
    arrival order in which no event comes more than the lateness bound after a later one."""
    n = draw(st.integers(2, 9))
    minutes = sorted(draw(st.lists(st.integers(0, 400), min_size=n, max_size=n)))
    events = [tx(f"t{i:02d}", m, location=draw(st.sampled_from(PLACES)),
                 amount=draw(st.sampled_from([90.0, 1_200.0])), method=draw(st.sampled_from(["UPI", "Card"])),
                 status=draw(st.sampled_from(["success", "success", "failed"]))) for i, m in enumerate(minutes)]
    delays = draw(st.lists(st.integers(0, int(LATENESS.total_seconds() // 60)), min_size=n, max_size=n))
    order = sorted(range(n), key=lambda i: (minutes[i] + delays[i], i))
    return events, [events[i] for i in order]


@settings(max_examples=300, deadline=None)
@given(days())
def test_pair_alerts_are_the_same_in_any_arrival_order_within_the_lateness_bound(day):
    in_time, arrived = day
    pairs = {a for a in alerts(in_time) if a[1] in PAIR_TYPOLOGIES}
    assert {a for a in alerts(arrived) if a[1] in PAIR_TYPOLOGIES} == pairs


def _batch(records: list[tuple[str, int, str]]):
    import json

    from txnmon.core.batch import BatchConfig, process_batch
    from txnmon.core.records import SourceRecord
    from txnmon.settings import load_settings

    config = BatchConfig.from_settings(load_settings(metrics_port=0))
    values = [{"transaction_id": tid, "user_id": "U1", "amount": 100, "payment_method": "UPI", "location": place,
               "timestamp": f"2025-09-30T10:{minute:02d}:00Z"} for tid, minute, place in records]
    raw = [SourceRecord("transactions.raw", 0, i, b"U1", json.dumps(v).encode(), 0) for i, v in enumerate(values)]
    return process_batch(raw, Detector(SHIPPED), config, now=T0, load_state=lambda users: {})


def test_a_completed_alert_leaves_the_batch_with_either_transaction_it_names():
    from txnmon.core.records import DUPLICATE_ID_CONFLICT, Rejection
    from txnmon.core.resend import SinkOutcome

    batch = _batch([("X", 40, "London"), ("L", 35, "Mumbai")])  # L arrives late and completes X's trip
    assert [(a["_id"], a["completed_by"]) for a in batch.alerts] == [("X:impossible_travel", "L")]
    # the sink finds X stored with other content: the alert about X's content must not be written
    batch.apply(SinkOutcome(withdraw={"X": Rejection(DUPLICATE_ID_CONFLICT, "other content")}))
    assert [t["_id"] for t in batch.transactions] == ["L"] and batch.alerts == []
    # a replay whose look-back holds X but not L keeps L's alert on X (L raised it in the range)
    replay = _batch([("X", 40, "London"), ("L", 35, "Mumbai")])
    replay.keep_only(lambda record: record.offset == 1)
    assert [a["_id"] for a in replay.alerts] == ["X:impossible_travel"]


def test_completed_alerts_are_suppressed_within_a_window_and_start_one_like_any_alert():
    rules = SHIPPED.model_copy(update={"typologies": {**SHIPPED.typologies, "impossible_travel": SHIPPED.typologies[
        "impossible_travel"].model_copy(update={"suppress_for": dt.timedelta(hours=1)})}})
    detector = Detector(rules)
    for t in (tx("a1", 40, location="London"), tx("a2", 50, location="London")):
        detector.record(detector.judge(t))
    late = detector.judge(tx("home", 0))  # completes a1's trip, and a2's, ten minutes later
    found = {e.transaction_id: h.suppressed_by for e, h in late.completed}
    assert found == {"a1": None, "a2": "a1:impossible_travel"}
    assert late.raised == {"impossible_travel": (T0 + dt.timedelta(minutes=40), "a1:impossible_travel")}
    docs = completed_alerts(late, tx("home", 0), created_at=T0, rules_version=rules.version)
    assert [d.get("suppressed_by") for d in docs] == [None, "a1:impossible_travel"]
    detector.record(late)
    nxt = detector.judge(tx("a3", 70, location="Berlin"))  # too fast from London, within the hour: suppressed
    assert [h.suppressed_by for h in nxt.hits] == ["a1:impossible_travel"]
    detector.forget("U1", "home", late)  # the late one dropped: the window it opened goes with it
    assert [h.suppressed_by for h in detector.judge(tx("a3", 70, location="Berlin")).hits] == [None]
