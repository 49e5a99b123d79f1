"""The decision mapping and the verdict's completeness, as pure functions."""

import datetime as dt
import json

import pytest

from txnmon.api import decisions
from txnmon.core.batch import content_fingerprint
from txnmon.core.contract import parse_transaction
from txnmon.settings import load_settings

NOW = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


def alert(rule="high_value_new_country", severity="high", **extra):
    return {"_id": f"t1:{rule}", "alert_id": f"t1:{rule}", "transaction_id": "t1", "rule": rule,
            "severity": severity, "reason": f"{rule} fired", "mode": "live", **extra}


@pytest.mark.parametrize(("alerts", "expected"), [
    ([], "approve"),
    ([alert(severity="low")], "review"),
    ([alert(severity="medium")], "review"),
    ([alert(severity="high")], "decline"),
    ([alert("velocity", "medium"), alert(severity="high")], "decline"),
    ([alert(severity="surprising")], "review"),  # an unknown severity is never an approve
    # a blocked user declines whatever severity the listed rule is configured with
    ([alert("listed", "low", explanation={"entries": [{"list": "blocked_users", "reason": "chargebacks"}]})],
     "decline"),
    ([alert("listed", "low", explanation={"entries": [{"list": "risky_locations"}]})], "review"),
    ([alert(severity="high", mode="shadow")], "approve"),  # a rule on trial decides nothing
    ([alert(severity="high", user_id="u1", suppressed_by="list:trusted_users:u1:high_value_new_country")],
     "approve"),
    ([alert(severity="high", suppressed_by="t0:high_value_new_country")], "decline"),  # a repeat still counts
])
def test_the_decision_by_severity_and_lists(alerts, expected):
    assert decisions.decide(alerts) == expected


def test_a_repeat_of_a_transaction_whose_id_starts_with_list_still_counts():
    # a repeat names the earlier alert "<transaction id>:<rule>"; transaction "list:x" made it look trusted
    repeat = alert(severity="high", user_id="u1", suppressed_by="list:x:high_value_new_country")
    assert decisions.counts(repeat) and decisions.decide([repeat]) == "decline"
    other_user = alert(severity="high", user_id="u2", suppressed_by="list:trusted_users:u1:high_value_new_country")
    assert decisions.decide([other_user]) == "decline"  # u1's trust silences nothing of u2's
    trusted = alert(severity="high", user_id=" U1 ", suppressed_by="list:trusted_users:u1:high_value_new_country")
    assert decisions.decide([trusted]) == "approve"  # the processor matches users case- and space-insensitively


def test_a_verdict_is_complete_only_once_every_alert_the_transaction_names_is_stored():
    tx = {"_id": "t1", "alert_reasons": ["high_value_new_country", "velocity"], "risk_score": 70}
    assert not decisions.is_complete(tx, [alert()])
    assert decisions.is_complete(tx, [alert(), alert("velocity", "medium")])
    assert decisions.is_complete({"_id": "t2", "alert_reasons": []}, [])


def test_the_verdict_carries_the_score_the_rules_version_and_each_alerts_explanation():
    tx = {"_id": "t1", "alert_reasons": ["high_value_new_country"], "risk_score": 66, "rules_version": "2"}
    why = {"rule": "high_value_new_country", "signals": {"new_country": 30}}
    answer = decisions.verdict(tx, [alert(severity="medium", explanation=why),
                                    alert("velocity", "high", mode="shadow")])
    assert (answer["decision"], answer["score"], answer["rules_version"]) == ("review", 66, "2")
    assert answer["alerts"][0] == {"alert_id": "t1:high_value_new_country", "rule": "high_value_new_country",
                                   "severity": "medium", "reason": "high_value_new_country fired",
                                   "explanation": why, "counted": True}
    assert len(answer["alerts"]) == 1  # a shadow alert (a rule on trial) is not shown to an integration


def test_the_verdict_does_not_say_who_added_a_list_entry():
    entries = [{"_id": "blocked_users:u1", "list": "blocked_users", "field": "user_id", "reason": "chargebacks",
                "added_by": "alice@desk"}]
    listed = alert("listed", "high", reason="user_id u1 is on blocked_users (chargebacks, added by alice@desk)",
                   explanation={"rule": "listed", "entries": entries})
    answer = decisions.verdict({"_id": "t1", "alert_reasons": ["listed"]}, [listed])
    assert answer["decision"] == "decline" and "alice" not in json.dumps(answer)
    assert answer["alerts"][0]["reason"] == "user_id u1 is on blocked_users (chargebacks)"
    assert answer["alerts"][0]["explanation"]["entries"][0]["reason"] == "chargebacks"


def test_wait_ms_is_bounded_and_a_bad_value_names_the_parameter():
    assert decisions.wait_ms_of(None, 1000, 5000) == 1000
    assert decisions.wait_ms_of(None, 9000, 5000) == 5000
    assert decisions.wait_ms_of(" 0 ", 1000, 5000) == 0
    # "²" and "³" are digits to str.isdigit() but not to int() (was a 500); "٣" is a number to int()
    for bad in ("abc", "-1", "1.5", "", "9" * 30, "6000", "\u00b2", "1\u00b3", "\u0663"):
        with pytest.raises(decisions.BadParameter, match="wait_ms"):
            decisions.wait_ms_of(bad, 1000, 5000)


def test_identity_is_the_fingerprint_the_processor_stores():
    s = load_settings()
    record = {"transaction_id": "t1", "user_id": "u1", "amount": 10.5, "payment_method": "card",
              "location": "Paris", "timestamp": "2026-01-01T11:00:00Z"}
    parsed = parse_transaction(json.dumps(record).encode(), zone=s.zone, now=NOW, max_bytes=s.max_message_bytes)
    assert decisions.identity(record, zone=s.zone, now=NOW, max_bytes=s.max_message_bytes) == \
        ("t1", content_fingerprint(parsed))
    assert decisions.identity({**record, "amount": "lots"}, zone=s.zone, now=NOW, max_bytes=1 << 20) is None
    assert not decisions.conflicts({"content_hash": content_fingerprint(parsed)}, content_fingerprint(parsed))
    assert decisions.conflicts({"content_hash": "other"}, content_fingerprint(parsed))


def test_pending_names_where_to_ask_again():
    answer = decisions.pending("a/b c", "not yet")
    assert answer["decision"] == "pending" and answer["location"] == "/v1/decisions/a%2Fb%20c"
