"""The quality suites' run-time values: the alert names come from the rules, not from the suites file."""

from __future__ import annotations

import datetime as dt

import pytest

from txnmon.core.quality import ALERT_NAMES, load_suites, resolve_suite
from txnmon.core.rules import RULE_NAMES, load_rules, parse_rules
from txnmon.errors import InvalidInputFile
from txnmon.settings import DEFAULT_RULES_FILE

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_the_alerts_suite_takes_its_rule_names_at_run_time():
    specs = load_suites()["alerts"]
    assert any(s["kwargs"].get("value_set") == ALERT_NAMES for s in specs)
    [rule] = [s for s in resolve_suite(specs, NOW, ["velocity", "card_testing"]) if s["kwargs"]["column"] == "rule"]
    assert rule["kwargs"]["value_set"] == ["card_testing", "velocity"] and rule["severity"] == "critical"
    with pytest.raises(InvalidInputFile, match="alert_names"):
        resolve_suite(specs, NOW)
    assert resolve_suite(load_suites()["replay_file"], NOW)  # no placeholder there: needs no names


def test_alert_names_are_every_rule_and_typology_of_a_file():
    shipped = load_rules(DEFAULT_RULES_FILE)
    assert set(RULE_NAMES) <= shipped.alert_names()  # every name the detector's own catalogue knows
    custom = parse_rules("version: t\nrules: {velocity: {enabled: false}}\n"
                         "typologies: {mule_burst: {signals: {declines: 1}, thresholds: {medium: 1}}}\n")
    names = custom.alert_names()
    assert "mule_burst" in names and "velocity" in names  # a disabled rule's old alerts keep its name
    assert "card_testing" not in names  # a typology of another file
