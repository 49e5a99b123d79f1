"""The rule-quality view's tables from labels and dispositions, without a server."""

from __future__ import annotations

from txnmon.core.labelled_quality import labelled_report
from txnmon.core.triage import rule_quality_pipeline, severity_rows


def test_recall_counts_an_incident_once_and_only_with_its_patterns_rule():
    incidents = [
        {"_id": "F1", "pattern": "card_testing", "reasons": [[], ["card_testing"], ["card_testing"]]},
        {"_id": "F2", "pattern": "card_testing", "reasons": [["velocity"]]},  # another rule: not caught
        {"_id": "F3", "pattern": "account_takeover", "reasons": [["high_value_unusual_location"]]},  # version 1's
        {"_id": "F4", "pattern": "something_new", "reasons": [None, ["velocity"]]},  # no rule expected: any alert
    ]
    report = labelled_report([], incidents)
    assert report["patterns"] == [
        {"pattern": "account_takeover", "incidents": 1, "caught": 1, "recall": 1.0},
        {"pattern": "card_testing", "incidents": 2, "caught": 1, "recall": 0.5},
        {"pattern": "something_new", "incidents": 1, "caught": 1, "recall": 1.0},
    ]
    assert report["behaviours"] == [] and report["overall"] == []


def test_false_alerts_per_behaviour_and_overall():
    rows = [{"_id": "traveller", "transactions": 40, "alerted": 2}, {"_id": "ordinary", "transactions": 960,
                                                                       "alerted": 3}]
    report = labelled_report(rows, [])
    assert [b["behaviour"] for b in report["behaviours"]] == ["ordinary", "traveller"]
    assert report["behaviours"][1]["rate"] == 0.05
    assert report["overall"] == [{"transactions": 1_000, "false_alerts": 5, "rate": 0.005}]


def test_severity_totals_over_rules_and_days():
    rows = [{"high_alerts": 3, "high_true_positives": 1, "high_false_positives": 1, "low_alerts": 5},
            {"high_alerts": 2, "high_false_positives": 1, "medium_alerts": 1}]
    by = {r["severity"]: r for r in severity_rows(rows)}
    assert (by["high"]["alerts"], by["high"]["marked"], by["high"]["false_share"]) == (5, 3, 2 / 3)
    assert by["low"]["marked"] == 0 and by["low"]["false_share"] is None and by["medium"]["alerts"] == 1


def test_the_rule_quality_pipeline_counts_each_severity():
    group = rule_quality_pipeline()[3]["$group"]
    assert {f"{s}_{n}" for s in ("low", "medium", "high") for n in ("alerts", "true_positives",
                                                                     "false_positives")} <= set(group)
    assert group["high_false_positives"] == {"$sum": {"$cond": [{"$and": [
        {"$eq": ["$severity", "high"]}, {"$eq": ["$disposition", "false_positive"]}]}, 1, 0]}}
