"""The alerts suite knows every name an alert may carry: the rules and typologies of the rules file in
effect and of every rules version the processor recorded, so a typology added or renamed in the rules
file is no quality failure, and an alert named by nothing txnmon ran still is."""

from __future__ import annotations

import datetime as dt

import pytest

from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import ALERTS, QUALITY_REPORTS, RULE_VERSIONS, TRANSACTIONS
from txnmon.core.rules import load_rules
from txnmon.jobs.quality import known_alert_names, run_quality_checks

pytestmark = [pytest.mark.integration]

RETIRED_VERSION = """\
version: retired
typologies:
  mule_burst:
    signals: {declines: 1}
    thresholds: {medium: 1}
"""


def _alert(n: int, rule: str, now: dt.datetime) -> dict:
    return {"_id": f"A{n}", "alert_id": f"A{n}", "transaction_id": f"T{n}", "rule": rule, "severity": "medium",
            "event_time": now, "created_at": now, "user_id": "U1", "mode": "live"}


def test_typology_alerts_pass_and_an_unknown_name_fails(isolated_settings, tmp_path):
    s = isolated_settings
    store = MongoStore(s)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    in_effect = load_rules(s.rules_file)
    assert {"card_testing", "refund_abuse", "account_takeover"} <= set(in_effect.typologies)  # rules version 2
    store.insert_missing(RULE_VERSIONS, [{"_id": "retired", "text": RETIRED_VERSION, "path": "old.yaml",
                                          "first_loaded_at": now - dt.timedelta(days=30)},
                                         {"_id": "unreadable", "text": "rules: [", "path": "bad.yaml",
                                          "first_loaded_at": now - dt.timedelta(days=60)}])
    names = known_alert_names(store, s.rules_file)
    assert {"card_testing", "refund_abuse", "high_amount", "listed", "mule_burst"} <= names
    assert "made_up_rule" not in names

    rules = ["card_testing", "refund_abuse", "mule_burst", "high_amount", "made_up_rule"]
    # the alerted transactions were stored the day before: only the alerts are in the interval
    store.insert_missing(TRANSACTIONS, [{"_id": f"T{n}", "transaction_id": f"T{n}", "user_id": "U1", "amount": 10.0,
                                         "processed_time": now - dt.timedelta(days=1)} for n in range(len(rules))])
    store.insert_missing(ALERTS, [_alert(n, rule, now) for n, rule in enumerate(rules)])
    summaries = run_quality_checks(store, now - dt.timedelta(minutes=1), now + dt.timedelta(minutes=1), tmp_path,
                                   fail_on_critical=False)
    [alerts] = [d for d in summaries if d["suite"] == ALERTS]
    assert alerts["rows"] == len(rules)
    assert [(f["column"], f["unexpected_count"], f.get("sample")) for f in alerts["failed_expectations"]] == [
        ("rule", 1, ["made_up_rule"])]
    assert store.find_one(QUALITY_REPORTS, {"_id": alerts["_id"]})["critical_failed"] is True
