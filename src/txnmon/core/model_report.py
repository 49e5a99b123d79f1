"""The detection report's model comparison: the rules alone against the rules with the risk model
weighed as a typology signal (`model_score`), per generated fraud pattern (recall) and per clean
behaviour (false alerts), on the same labelled day.

The model enters the typologies as any signal does (docs/model.md): `weigh_model` adds
`model_score: weight` to every enabled typology, with the signal's `threshold`, and may raise every
typology's thresholds by `raise_by`. With `raise_by` 0 the model can only add alerts (a near miss
pushed over); with `raise_by` equal to the weight a typology alerts only where the model agrees; in
between, a combination of signals needs the model unless it clears the raised bar on its own. Names
are kept, so an incident counts as caught by the same typology (core/backtest.py PATTERN_RULES).
Pure: the two backtests are run by the caller.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pydantic import ValidationError

from txnmon.core.rules import RuleSet
from txnmon.errors import RulesError


def weigh_model(ruleset: RuleSet, threshold: float, weight: float, raise_by: float = 0.0,
                typologies: Collection[str] | None = None) -> RuleSet:
    """`ruleset` with `model_score` (at `threshold`) weighing `weight` in every enabled typology (or
    those named in `typologies`), and every threshold of those typologies raised by `raise_by` while a model
    scores (`thresholds_with_model`: without a model their verdicts stay the rules' own). Its version names
    the change."""
    unknown = sorted(set(typologies or ()) - set(ruleset.typologies))
    if unknown:
        raise RulesError(f"no typology {', '.join(unknown)} in rules {ruleset.version}")
    doc = ruleset.model_dump()
    doc["signals"]["model_score"]["threshold"] = threshold
    for name, typology in doc["typologies"].items():
        if not typology["enabled"] or (typologies is not None and name not in typologies):
            continue
        typology["signals"]["model_score"] = weight
        if raise_by:
            typology["thresholds_with_model"] = {s: v + raise_by for s, v in typology["thresholds"].items()}
    named = "" if typologies is None else ":" + ",".join(sorted(typologies))
    doc["version"] = f"{ruleset.version}+model_score@{threshold:g}x{weight:g}+{raise_by:g}{named}"
    try:
        return RuleSet.model_validate(doc)
    except ValidationError as exc:  # a threshold outside 0..1, a weight that can never reach a threshold
        raise RulesError(f"model_score at {threshold:g} weighing {weight:g} (+{raise_by:g}): {exc}") from None


def detection_comparison(rules: Mapping[str, Any], hybrid: Mapping[str, Any]) -> dict[str, Any]:
    """Two backtests' `quality` sections (core/backtest.py `to_json`) of the same labelled day, side by
    side: {"patterns": [{pattern, incidents, rules_caught, model_caught, rules_recall, model_recall}],
    "behaviours": [{behaviour, transactions, rules_false, model_false}], "overall": {...}}.

    `overall["target_met"]`: at least the rules' recall on every pattern, and fewer false alerts in all."""
    r_pat, h_pat = rules["recall_by_pattern"], hybrid["recall_by_pattern"]
    patterns = []
    for name in sorted(set(r_pat) | set(h_pat)):
        r, h = r_pat.get(name, {}), h_pat.get(name, {})
        incidents = r.get("incidents") or h.get("incidents") or 0
        rc, hc = r.get("caught", 0), h.get("caught", 0)
        patterns.append({"pattern": name, "incidents": incidents, "rules_caught": rc, "model_caught": hc,
                         "rules_recall": rc / incidents if incidents else 0.0,
                         "model_recall": hc / incidents if incidents else 0.0})
    r_beh = rules.get("false_alerts_by_behaviour") or {}
    h_beh = hybrid.get("false_alerts_by_behaviour") or {}
    behaviours = []
    for name in sorted(set(r_beh) | set(h_beh)):
        r, h = r_beh.get(name, {}), h_beh.get(name, {})
        behaviours.append({"behaviour": name, "transactions": r.get("transactions") or h.get("transactions") or 0,
                           "rules_false": r.get("false_alerts", 0), "model_false": h.get("false_alerts", 0)})
    incidents = sum(p["incidents"] for p in patterns)
    rules_caught = sum(p["rules_caught"] for p in patterns)
    model_caught = sum(p["model_caught"] for p in patterns)
    rules_false, model_false = rules["false_alerts"], hybrid["false_alerts"]
    kept = all(p["model_caught"] >= p["rules_caught"] for p in patterns)
    overall = {"incidents": incidents, "rules_caught": rules_caught, "model_caught": model_caught,
               "rules_recall": rules_caught / incidents if incidents else 0.0,
               "model_recall": model_caught / incidents if incidents else 0.0,
               "clean_transactions": rules["clean_transactions"],
               "rules_false": rules_false, "model_false": model_false,
               "recall_kept_on_every_pattern": kept,
               "target_met": kept and model_false < rules_false}
    return {"patterns": patterns, "behaviours": behaviours, "overall": overall}


def render_comparison(doc: Mapping[str, Any], label: str = "rules + model") -> str:
    """The comparison as a terminal table (the same figures as docs/model.md prints)."""
    o = doc["overall"]
    lines = [f"  {'injected pattern':<24}{'incidents':>10}{'rules':>14}{label:>20}"]
    for p in doc["patterns"]:
        lines.append(f"  {p['pattern']:<24}{p['incidents']:>10,}"
                     f"{_caught(p['rules_caught'], p['rules_recall']):>14}"
                     f"{_caught(p['model_caught'], p['model_recall']):>20}")
    lines.append(f"  {'all':<24}{o['incidents']:>10,}{_caught(o['rules_caught'], o['rules_recall']):>14}"
                 f"{_caught(o['model_caught'], o['model_recall']):>20}")
    lines += ["", f"  {'clean behaviour':<24}{'transactions':>13}{'rules false':>13}{label + ' false':>26}"]
    for b in doc["behaviours"]:
        lines.append(f"  {b['behaviour']:<24}{b['transactions']:>13,}{b['rules_false']:>13,}{b['model_false']:>26,}")
    lines.append(f"  {'all':<24}{o['clean_transactions']:>13,}{o['rules_false']:>13,}{o['model_false']:>26,}")
    verdict = "met" if o["target_met"] else "not met"
    lines += ["", f"  target (at least the rules' recall on every pattern, fewer false alerts): {verdict}"]
    return "\n".join(lines)


def _caught(n: int, share: float) -> str:
    return f"{n:,} ({share:.1%})"
