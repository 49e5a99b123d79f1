"""Signals and typologies: what a transaction shows given the user's history, weighed into alerts.

A signal is a plain function (event, the user's earlier events, settings) -> `Evidence` or None,
like a rule, but it raises nothing by itself. A typology (the rules file's `typologies:`) adds the
weights of the signals present and raises an alert of the highest severity whose threshold the
sum reaches: a new place alone is ordinary travel, a new place with a never-used payment method
and an amount far above the user's usual is account takeover.

The hot path: most transactions show no signal, so a typology evaluates its signals cheapest
first (`COST`) and stops as soon as the weights still to come can no longer reach its lowest
threshold; each signal is computed at most once per transaction, shared by the typologies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from txnmon.core.rules.history import count_since, usual_amounts
from txnmon.core.rules.model_signal import ModelScore, model_evidence, model_score_signal
from txnmon.core.rules.places import (
    far_from_usual_signal,
    fast_travel_signal,
    new_country_signal,
    new_location_signal,
)
from txnmon.core.rules.rulebook import (
    AmountVsUsualSignal,
    DeclinesSignal,
    HighAmountSignal,
    NewPaymentMethodSignal,
    RefundsSignal,
    RuleSet,
    Signals,
    TinyAmountsSignal,
    Typology,
    VelocitySignal,
)
from txnmon.core.rules.state import Event
from txnmon.core.rules.windows import (
    MAX_LISTED,
    Evidence,
    derived,
    fmt_amount,
    fmt_span,
    shared,
    unshared,
    with_counted,
    within,
)

# what other modules take from here
__all__ = ["COST", "MAX_LISTED", "SIGNALS", "Evidence", "TypologyHit", "TypologyPlan", "checkouts", "fmt_amount",
           "fmt_span", "plan", "typology_explanation", "typology_reason", "weigh", "with_counted", "within"]


def _is_purchase(e: Event) -> bool:
    return e.type != "refund" and e.status != "failed"


# what the signals work out from a window of the user's history, once per transaction (`derived`)
def _not_refunds(history: list[Event]) -> list[Event]:
    return [e for e in history if e.type != "refund"]


def _methods(history: list[Event]) -> tuple[list[Event], frozenset[str]]:
    """The window's events with a payment method, and those methods casefolded."""
    # events restored from an older state format have no payment method: they tell nothing
    used = [e for e in history if e.payment_method]
    return used, frozenset(e.payment_method.casefold() for e in used)


# --- the signals: (event, the user's earlier events, settings) -> Evidence or None ---


def high_amount_signal(event: Event, prior: Sequence[Event], cfg: HighAmountSignal) -> Evidence | None:
    if event.amount > cfg.threshold:
        return Evidence(f"amount {fmt_amount(event.amount)} above {fmt_amount(cfg.threshold)}",
                        measured={"amount": event.amount})
    return None


def amount_vs_usual_signal(event: Event, prior: Sequence[Event], cfg: AmountVsUsualSignal) -> Evidence | None:
    if event.amount < cfg.min_amount or event.type == "refund":
        return None
    since = event.event_time - cfg.lookback
    # the user's kept window of amounts (src/txnmon/core/rules/history.py), or a scan of `prior`
    amounts = usual_amounts(unshared(prior), since, cfg.lookback)
    if amounts is not None and len(amounts) >= max(cfg.min_history, 1):
        mid = len(amounts) // 2
        if amounts[mid] == 0 or amounts[mid - 1] == 0:
            amounts = None  # 0.0 and -0.0 are equal but print apart: the scan's order decides which
    usual: list[Event] | None = None
    if amounts is None:
        # declined attempts count: they show the basket the user tries to buy as well as paid ones do
        usual = derived(prior, "usual", since, _not_refunds)
        amounts = sorted(e.amount for e in usual)
    if len(amounts) < cfg.min_history:
        return None
    mid = len(amounts) // 2
    median = amounts[mid] if len(amounts) % 2 else (amounts[mid - 1] + amounts[mid]) / 2
    if median <= 0:  # free orders and zero-value card checks: no usual basket to be a multiple of
        return None
    if event.amount < cfg.factor * median:
        return None
    if usual is None:
        usual = derived(prior, "usual", since, _not_refunds)
    return Evidence(f"amount {fmt_amount(event.amount)} is {event.amount / median:.1f}x the usual "
                    f"{fmt_amount(median)}", tuple(usual),
                    {"amount": event.amount, "usual_amount": median, "ratio": round(event.amount / median, 2)})


def new_payment_method_signal(event: Event, prior: Sequence[Event], cfg: NewPaymentMethodSignal) -> Evidence | None:
    if not event.payment_method:
        return None
    history, methods = derived(prior, "methods", event.event_time - cfg.lookback, _methods)
    if len(history) < cfg.min_history:
        return None
    if event.payment_method.casefold() in methods:
        return None
    used = sorted({e.payment_method for e in history})[:MAX_LISTED]
    return Evidence(f"{event.payment_method} never used before (used: {', '.join(used[:3])})", tuple(history),
                    {"payment_method": event.payment_method, "used": used})


def _count_signal(event: Event, prior: Sequence[Event], window: dt.timedelta, min_count: int, what: str,
                  matches: Callable[[Event], bool]) -> Evidence | None:
    """`event` and at least `min_count` - 1 earlier events within `window` that match (the caller
    has checked that `event` does: most do not, and then nothing is built)."""
    since = event.event_time - window
    if _too_few(prior, since, min_count):
        return None
    counted = [e for e in within(prior, since) if matches(e)]
    if len(counted) + 1 < min_count:
        return None
    return Evidence(f"{len(counted) + 1} {what} within {fmt_span(window)}", tuple(counted),
                    {"count": len(counted) + 1})


def tiny_amounts_signal(event: Event, prior: Sequence[Event], cfg: TinyAmountsSignal) -> Evidence | None:
    if event.type == "refund" or not event.amount <= cfg.max_amount:
        return None

    def tiny(e: Event) -> bool:
        return e.type != "refund" and e.amount <= cfg.max_amount
    return _count_signal(event, prior, cfg.window, cfg.min_count,
                         f"payments of at most {fmt_amount(cfg.max_amount)}", tiny)


def _failed(e: Event) -> bool:
    return e.status == "failed"


def _refund(e: Event) -> bool:
    return e.type == "refund"


def declines_signal(event: Event, prior: Sequence[Event], cfg: DeclinesSignal) -> Evidence | None:
    return _count_signal(event, prior, cfg.window, cfg.min_count, "failed payments", _failed) \
        if event.status == "failed" else None


def refunds_signal(event: Event, prior: Sequence[Event], cfg: RefundsSignal) -> Evidence | None:
    return _count_signal(event, prior, cfg.window, cfg.min_count, "refunds", _refund) \
        if event.type == "refund" else None


def _too_few(prior: Sequence[Event], since: dt.datetime, min_count: int) -> bool:
    """Fewer events in the window, matching or not, than a count signal needs besides the transaction:
    known from the packed times, before any event is decoded."""
    found = count_since(unshared(prior), since)
    return found is not None and found + 1 < min_count


def checkouts(events: Sequence[Event], gap: dt.timedelta) -> list[list[Event]]:
    """Purchases (in event-time order) grouped into checkouts: a multi-item checkout is the items
    with the same payment method and place less than `gap` after its first item, one purchase."""
    out: list[list[Event]] = []
    for e in events:
        if out:
            first = out[-1][0]
            if (e.payment_method == first.payment_method and e.location == first.location
                    and e.event_time - first.event_time < gap):
                out[-1].append(e)
                continue
        out.append([e])
    return out


def velocity_signal(event: Event, prior: Sequence[Event], cfg: VelocitySignal) -> Evidence | None:
    if not _is_purchase(event):
        return None
    since = event.event_time - cfg.window
    if _too_few(prior, since, cfg.min_count):
        return None
    recent = [e for e in within(prior, since) if _is_purchase(e)]
    if len(recent) + 1 < cfg.min_count:  # fewer purchases than the checkouts needed: no grouping to do
        return None
    groups = checkouts([*reversed(recent), event], cfg.checkout_gap)
    if len(groups) < cfg.min_count:
        return None
    span = event.event_time - groups[0][0].event_time
    return Evidence(f"{len(groups)} checkouts ({len(recent) + 1} transactions) in {fmt_span(span)} "
                    f"(at least {cfg.min_count} within {fmt_span(cfg.window)})", tuple(recent),
                    {"checkouts": len(groups), "transactions": len(recent) + 1, "span_s": span.total_seconds()})


SignalFn = Callable[[Event, Sequence[Event], Any], "Evidence | None"]
SIGNALS: dict[str, SignalFn] = {
    "high_amount": high_amount_signal, "amount_vs_usual": amount_vs_usual_signal,
    "new_location": new_location_signal, "new_payment_method": new_payment_method_signal,
    "new_country": new_country_signal,
    "fast_travel": fast_travel_signal, "far_from_usual": far_from_usual_signal,
    "tiny_amounts": tiny_amounts_signal, "declines": declines_signal,
    "refunds": refunds_signal, "velocity": velocity_signal, "model_score": model_score_signal,
}
# evaluation order within a typology: those that look at the transaction alone first, then short
# windows, then the long lookbacks
# (the model's score is computed for the whole batch before: here it is only compared)
COST = {"model_score": 0, "high_amount": 0, "tiny_amounts": 1, "declines": 1, "refunds": 1,
        "amount_vs_usual": 2, "velocity": 3, "fast_travel": 3, "new_location": 4, "new_payment_method": 4,
        "new_country": 4, "far_from_usual": 5}


_UNSEEN: Any = object()  # a signal not computed yet for this transaction (None: computed, absent)


class TypologyPlan(NamedTuple):
    """A typology ready to run: its signals cheapest first, with the positive weight still to come."""

    name: str
    typology: Typology
    steps: tuple[tuple[str, float, float], ...]  # (signal, weight, positive weight of the signals after it)
    lowest: float
    # what `weigh` runs, worked out once: the settings they were bound from, per step (signal, weight,
    # the most the rest can still add with it, function, settings), and (severity, score needed) from low up
    signals: Signals | None = None
    calls: tuple[tuple[str, float, float, SignalFn, Any], ...] = ()
    levels: tuple[tuple[str, float], ...] = ()
    # the same and the lowest score of `thresholds_with_model`, in force when a model scored the transaction
    levels_with_model: tuple[tuple[str, float], ...] = ()
    lowest_with_model: float = 0.0


def plan(ruleset: RuleSet) -> list[TypologyPlan]:
    out = []
    for name, t in ruleset.typologies.items():
        if not t.enabled:
            continue
        ordered = sorted(t.signals.items(), key=lambda kv: (COST[kv[0]], kv[0]))
        steps = []
        for i, (signal, weight) in enumerate(ordered):
            steps.append((signal, weight, sum(max(w, 0.0) for _, w in ordered[i + 1:])))
        out.append(plan_of(TypologyPlan(name, t, tuple(steps), min(t.thresholds.values())), ruleset))
    return out


class TypologyHit(NamedTuple):
    name: str
    severity: str
    total: float
    present: dict[str, tuple[float, Evidence]]  # signal -> (weight, evidence)
    modelled: bool = False  # weighed with a model's score: `thresholds_for(True)` were in force


def weigh(plans: Sequence[TypologyPlan], event: Event, prior: Sequence[Event], ruleset: RuleSet,
          model: ModelScore | None = None, modelled: bool | None = None) -> list[TypologyHit]:
    """The typologies whose weighted signals reach a threshold on `event`; `model`: the batch's score of
    it (src/txnmon/core/scoring.py), None without a promoted model (the model's signal is then absent).
    `modelled`: whether a model is in use (default: whether `model` is given), which puts typologies'
    `thresholds_with_model` in force; a late arrival's re-weighing has the model in use but no score."""
    settings = ruleset.signals
    prior = shared(prior)  # the windows the signals scan, and what they work out from them, once
    # the model's score was computed for the whole batch before judging: here it is only compared
    seen: dict[str, Evidence | None] = {"model_score": model_evidence(model, settings.model_score)}
    if modelled is None:
        modelled = model is not None
    hits = []
    for p in plans:
        if p.signals is not settings:  # a plan made elsewhere, or for other settings: bind as it goes
            p = plan_of(p, ruleset)
        total = 0.0
        present: dict[str, tuple[float, Evidence]] | None = None  # made for the first signal present (most have none)
        if modelled and p.levels_with_model:
            lowest, levels, with_model = p.lowest_with_model, p.levels_with_model, True
        else:
            lowest, levels, with_model = p.lowest, p.levels, False
        for signal, weight, reach, fn, cfg in p.calls:
            if total + reach < lowest:
                break  # the threshold is out of reach whatever the rest shows
            evidence = seen.get(signal, _UNSEEN)
            if evidence is _UNSEEN:
                evidence = seen[signal] = fn(event, prior, cfg)
            if evidence is not None:
                total += weight
                if present is None:
                    present = {}
                present[signal] = (weight, evidence)  # type: ignore[assignment]
        if present:
            # the highest severity whose score the total reaches (as `Typology.severity_of`)
            severity = None
            for level, need in levels:
                if total >= need:
                    severity = level
            if severity is not None:
                hits.append(TypologyHit(p.name, severity, total, present, with_model))
    if model is not None and model.explain is not None and any("model_score" in h.present for h in hits):
        # a typology fired with the model's signal: only now are its factors worked out, once for every hit
        full = model_evidence(model.explained(), settings.model_score)
        hits = [h._replace(present={**h.present, "model_score": (h.present["model_score"][0], full)})
                if "model_score" in h.present else h for h in hits]
    return hits


def plan_of(p: TypologyPlan, ruleset: RuleSet) -> TypologyPlan:
    """`p` bound to `ruleset`'s signal settings (its steps as they are)."""
    settings = ruleset.signals
    calls = tuple((signal, weight, max(weight, 0.0) + still, SIGNALS[signal], getattr(settings, signal))
                  for signal, weight, still in p.steps)
    levels = _levels(p.typology.thresholds)
    raised = p.typology.thresholds_with_model
    return p._replace(signals=settings, calls=calls, levels=levels, levels_with_model=_levels(raised) if raised else (),
                      lowest_with_model=min(raised.values()) if raised else 0.0)


def _levels(thresholds: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    """(severity, score needed) from low up."""
    return tuple((s, thresholds[s]) for s in ("low", "medium", "high") if s in thresholds)


def typology_reason(hit: TypologyHit) -> str:
    parts = [f"{evidence.reason} (+{weight:g})" for _, (weight, evidence) in hit.present.items()]
    return f"score {hit.total:g}: " + "; ".join(parts)


def typology_explanation(hit: TypologyHit, ruleset: RuleSet) -> dict[str, Any]:
    """Why a typology fired: its weights and thresholds, each present signal's settings, what it
    measured and the prior events it counted, and every counted id (oldest first) at the top."""
    t = ruleset.typologies[hit.name]
    counted = {e.transaction_id: e for _, ev in hit.present.values() for e in ev.counted}
    return with_counted({
        "rule": hit.name, "typology": True, "rules_version": ruleset.version,
        "params": {"signals": dict(t.signals), "thresholds": dict(t.thresholds_for(hit.modelled))},
        "measured": {"score": hit.total, "signals": ", ".join(hit.present)},
        "signals": [with_counted({"signal": name, "weight": weight, "reason": ev.reason,
                                  "params": getattr(ruleset.signals, name).model_dump(mode="json"),
                                  "measured": ev.measured or {}}, ev.counted)
                    for name, (weight, ev) in hit.present.items()],
    }, list(counted.values()))
