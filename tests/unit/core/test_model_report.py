"""The detection report's model comparison (src/txnmon/core/model_report.py): the rules alone against
the rules with `model_score` weighed, per pattern and per clean behaviour."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tests.fixtures.datasets import REALISTIC_DAY
from txnmon.core.backtest import normalise_rows, run_backtest, to_json
from txnmon.core.model_report import detection_comparison, render_comparison, weigh_model
from txnmon.core.rules import load_rules
from txnmon.errors import RulesError
from txnmon.settings import DEFAULT_RULES_FILE
from txnmon.synthetic.generator import BEHAVIOURS, PATTERNS, GeneratorSpec, generate


def _quality(patterns: dict[str, tuple[int, int]], behaviours: dict[str, tuple[int, int]]) -> dict:
    return {"recall_by_pattern": {p: {"incidents": n, "caught": c, "recall": c / n}
                                  for p, (n, c) in patterns.items()},
            "false_alerts_by_behaviour": {b: {"transactions": n, "false_alerts": f}
                                          for b, (n, f) in behaviours.items()},
            "false_alerts": sum(f for _, f in behaviours.values()),
            "clean_transactions": sum(n for n, _ in behaviours.values())}


def test_the_table_puts_each_pattern_and_behaviour_side_by_side():
    rules = _quality({"burst": (10, 9), "card_testing": (8, 8)}, {"ordinary": (900, 4), "payday": (100, 2)})
    hybrid = _quality({"burst": (10, 10), "card_testing": (8, 8)}, {"ordinary": (900, 1), "payday": (100, 2)})
    doc = detection_comparison(rules, hybrid)
    assert doc["patterns"] == [
        {"pattern": "burst", "incidents": 10, "rules_caught": 9, "model_caught": 10,
         "rules_recall": 0.9, "model_recall": 1.0},
        {"pattern": "card_testing", "incidents": 8, "rules_caught": 8, "model_caught": 8,
         "rules_recall": 1.0, "model_recall": 1.0}]
    assert doc["behaviours"] == [
        {"behaviour": "ordinary", "transactions": 900, "rules_false": 4, "model_false": 1},
        {"behaviour": "payday", "transactions": 100, "rules_false": 2, "model_false": 2}]
    o = doc["overall"]
    assert (o["incidents"], o["rules_caught"], o["model_caught"]) == (18, 17, 18)
    assert (o["rules_false"], o["model_false"], o["clean_transactions"]) == (6, 3, 1_000)
    assert o["recall_kept_on_every_pattern"] and o["target_met"]
    table = render_comparison(doc)
    assert "burst" in table and "9 (90.0%)" in table and "10 (100.0%)" in table
    assert "payday" in table and ": met" in table


def test_the_target_is_missed_when_one_pattern_loses_recall_even_with_fewer_false_alerts():
    rules = _quality({"burst": (10, 9), "high_amount": (5, 5)}, {"ordinary": (900, 4)})
    hybrid = _quality({"burst": (10, 10), "high_amount": (5, 4)}, {"ordinary": (900, 0)})
    o = detection_comparison(rules, hybrid)["overall"]
    assert o["model_caught"] == o["rules_caught"] + 0  # 14 either way: overall recall alone would hide the loss
    assert not o["recall_kept_on_every_pattern"] and not o["target_met"]
    same_false = _quality({"burst": (10, 10), "high_amount": (5, 5)}, {"ordinary": (900, 4)})
    assert not detection_comparison(rules, same_false)["overall"]["target_met"]  # not fewer false alerts


def test_weigh_model_adds_the_signal_to_every_enabled_typology_and_raises_the_thresholds():
    shipped = load_rules(DEFAULT_RULES_FILE)
    weighed = weigh_model(shipped, 0.3, 20, 10)
    assert weighed.signals.model_score.threshold == 0.3
    assert weighed.version != shipped.version and "model_score" in weighed.version
    for name, typology in shipped.typologies.items():
        assert weighed.typologies[name].signals == {**typology.signals, "model_score": 20}
        assert weighed.typologies[name].thresholds == typology.thresholds  # without a model: unchanged
        assert weighed.typologies[name].thresholds_with_model == {s: v + 10 for s, v in typology.thresholds.items()}
    assert weighed.rules == shipped.rules  # single-condition rules are not the model's to change
    assert "model_score" not in shipped.used_signals() and "model_score" in weighed.used_signals()


def test_weigh_model_can_name_the_typologies_it_changes_and_refuses_unknown_ones():
    shipped = load_rules(DEFAULT_RULES_FILE)
    weighed = weigh_model(shipped, 0.1, 30, 30, typologies={"refund_abuse"})
    assert weighed.typologies["refund_abuse"].signals == {"refunds": 100, "model_score": 30}
    assert weighed.typologies["refund_abuse"].thresholds_for(modelled=True) == {"medium": 130}
    assert weighed.typologies["refund_abuse"].thresholds_for(modelled=False) == {"medium": 100}
    assert {n: t for n, t in weighed.typologies.items() if n != "refund_abuse"} == \
        {n: t for n, t in shipped.typologies.items() if n != "refund_abuse"}
    assert weighed.version.endswith(":refund_abuse")
    with pytest.raises(RulesError, match="no typology nope"):
        weigh_model(shipped, 0.1, 30, 30, typologies={"nope"})
    with pytest.raises(RulesError, match=r"model_score at 1\.5"):
        weigh_model(shipped, 1.5, 30, 0)  # a probability above 1: refused as a rules error, not a crash


def test_without_a_model_weighing_it_at_no_raise_changes_no_verdict_and_the_report_lists_every_pattern():
    df = generate(GeneratorSpec(seed=5, **{**REALISTIC_DAY, "rows": 3_000, "users": 300}))
    txs, rejected = normalise_rows(df.astype(str).to_dict("records"), ZoneInfo("UTC"),
                                   now=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    shipped = load_rules(DEFAULT_RULES_FILE)
    base = run_backtest(txs, shipped, rejected)
    weighed = run_backtest(txs, weigh_model(shipped, 0.5, 30, 0), rejected)  # no model: the signal is absent
    assert weighed.alerts == base.alerts
    # raised too: the raise holds only while a model scores (thresholds_with_model), so still the same alerts
    assert run_backtest(txs, weigh_model(shipped, 0.5, 30, 30), rejected).alerts == base.alerts
    doc = detection_comparison(to_json(base)["quality"], to_json(weighed)["quality"])
    assert [p["pattern"] for p in doc["patterns"]] == sorted(PATTERNS)
    assert [b["behaviour"] for b in doc["behaviours"]] == sorted(BEHAVIOURS)
    assert not doc["overall"]["target_met"]  # the same alerts: not fewer false alerts
