"""Fraud rules: the rules file, per-user state and the detector shared by processor and backtest."""

from txnmon.core.rules.conditions import RULE_NAMES, Hit
from txnmon.core.rules.engine import Detector, alert_document, evaluate, risk_score
from txnmon.core.rules.rulebook import RulesError, RuleSet, load_rules, parse_rules

__all__ = ["RULE_NAMES", "Detector", "Hit", "RuleSet", "RulesError", "alert_document", "evaluate", "load_rules",
           "parse_rules", "risk_score"]
