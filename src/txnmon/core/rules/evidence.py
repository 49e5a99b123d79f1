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
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from txnmon.core import geo
from txnmon.core.rules.rulebook import (
    AmountVsUsualSignal,
    DeclinesSignal,
    FarFromUsualSignal,
    FastTravelSignal,
    HighAmountSignal,
    NewLocationSignal,
    NewPaymentMethodSignal,
    RefundsSignal,
    RuleSet,
    TinyAmountsSignal,
    Typology,
    VelocitySignal,
)
from txnmon.core.rules.state import Event


class Evidence(NamedTuple):
    """A signal present on a transaction: what it saw, and the earlier events it counted."""

    reason: str
    counted: tuple[Event, ...] = ()
    measured: dict[str, Any] | None = None


# An explanation lists at most this many counted ids (the newest) and this many places or methods:
# the count stays exact in `counted_total`, and an alert stays a few KB whatever a user sends (180
# counted ids of 60 KB, listed twice, once made a 21 MB alert that MongoDB refused).
MAX_LISTED = 50


def listed_ids(events: Sequence[Event]) -> list[str]:
    """The ids of the newest `MAX_LISTED` of `events`, oldest first."""
    return [e.transaction_id for e in sorted(events, key=lambda e: e.key)[-MAX_LISTED:]]


def with_counted(out: dict[str, Any], events: Sequence[Event]) -> dict[str, Any]:
    """`out` with `counted` (see `listed_ids`) and, when that list is cut, `counted_total`."""
    out["counted"] = listed_ids(events)
    if len(events) > MAX_LISTED:
        out["counted_total"] = len(events)
    return out


def within(prior: Sequence[Event], since: dt.datetime) -> list[Event]:
    """The events of `prior` at or after `since`, newest first."""
    # prior is sorted by event time: walk back from the newest until outside the window (newest first)
    out: list[Event] = []
    for event in reversed(prior):
        if event.event_time < since:
            break
        out.append(event)
    return out


def fmt_amount(amount: float) -> str:
    """An amount as the explanations print it: no decimals when whole."""
    return f"{amount:,.0f}" if float(amount).is_integer() else f"{amount:,.2f}"


def fmt_span(delta: dt.timedelta) -> str:
    """A duration as the explanations print it: seconds, minutes, hours or days."""
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _is_purchase(e: Event) -> bool:
    return e.type != "refund" and e.status != "failed"


# --- the signals: (event, the user's earlier events, settings) -> Evidence or None ---


def high_amount_signal(event: Event, prior: Sequence[Event], cfg: HighAmountSignal) -> Evidence | None:
    if event.amount > cfg.threshold:
        return Evidence(f"amount {fmt_amount(event.amount)} above {fmt_amount(cfg.threshold)}",
                        measured={"amount": event.amount})
    return None


def amount_vs_usual_signal(event: Event, prior: Sequence[Event], cfg: AmountVsUsualSignal) -> Evidence | None:
    if event.amount < cfg.min_amount or event.type == "refund":
        return None
    # declined attempts count: they show the basket the user tries to buy as well as paid ones do
    usual = [e for e in within(prior, event.event_time - cfg.lookback) if e.type != "refund"]
    if len(usual) < cfg.min_history:
        return None
    amounts = sorted(e.amount for e in usual)
    mid = len(amounts) // 2
    median = amounts[mid] if len(amounts) % 2 else (amounts[mid - 1] + amounts[mid]) / 2
    if event.amount < cfg.factor * median:
        return None
    return Evidence(f"amount {fmt_amount(event.amount)} is {event.amount / median:.1f}x the usual "
                    f"{fmt_amount(median)}", tuple(usual),
                    {"amount": event.amount, "usual_amount": median, "ratio": round(event.amount / median, 2)})


def new_location_signal(event: Event, prior: Sequence[Event], cfg: NewLocationSignal) -> Evidence | None:
    history = within(prior, event.event_time - cfg.lookback)
    if len(history) < cfg.min_history:
        return None
    here = event.location.casefold()
    if any(e.location.casefold() == here for e in history):
        return None
    usual = sorted({e.location for e in history})[:MAX_LISTED]
    return Evidence(f"first transaction from {event.location} in {fmt_span(cfg.lookback)} "
                    f"(usual: {', '.join(usual[:3])})", tuple(history),
                    {"location": event.location, "usual": usual})


def new_payment_method_signal(event: Event, prior: Sequence[Event], cfg: NewPaymentMethodSignal) -> Evidence | None:
    if not event.payment_method:
        return None
    # events restored from an older state format have no payment method: they tell nothing
    history = [e for e in within(prior, event.event_time - cfg.lookback) if e.payment_method]
    if len(history) < cfg.min_history:
        return None
    method = event.payment_method.casefold()
    if any(e.payment_method.casefold() == method for e in history):
        return None
    used = sorted({e.payment_method for e in history})[:MAX_LISTED]
    return Evidence(f"{event.payment_method} never used before (used: {', '.join(used[:3])})", tuple(history),
                    {"payment_method": event.payment_method, "used": used})


def recent_move(event: Event, prior: Sequence[Event], window: dt.timedelta) -> tuple[Event, dt.timedelta] | None:
    """The user's previous event and the time since, if it was in another place at most `window` ago."""
    if not prior:
        return None
    last = prior[-1]
    if last.location.casefold() == event.location.casefold():
        return None
    gap = event.event_time - last.event_time
    return None if gap > window else (last, gap)


def travel_speed(last: Event, event: Event, gap: dt.timedelta) -> tuple[float, float] | None:
    """(km, km/h) between two events' cities; None when either city has no coordinates."""
    here, there = geo.lookup(event.location), geo.lookup(last.location)
    if here is None or there is None:
        return None
    km = geo.distance_km(here, there)
    hours = gap.total_seconds() / 3600
    return km, km / hours if hours > 0 else float("inf")


def fast_travel_signal(event: Event, prior: Sequence[Event], cfg: FastTravelSignal) -> Evidence | None:
    move = recent_move(event, prior, cfg.window)
    if move is None:
        return None
    last, gap = move
    if cfg.usual_lookback is not None:
        # a quick move back to a place the user used before the last one is a return: the move
        # away (its own verdict) is what was odd, not this transaction
        here_folded = event.location.casefold()
        if any(e.location.casefold() == here_folded
               for e in within(prior[:-1], event.event_time - cfg.usual_lookback)):
            return None
    measured: dict[str, Any] = {"previous_location": last.location, "location": event.location,
                                "gap_s": gap.total_seconds(), "distance_km": None, "speed_kmh": None}
    trip = travel_speed(last, event, gap)
    if trip is None:
        # cities missing from the coordinates table: only a change of city this fast is suspect
        if gap > cfg.unknown_city_window:
            return None
        return Evidence(f"{last.location} to {event.location} within {fmt_span(gap)}", (last,), measured)
    km, speed = trip
    if speed <= cfg.max_speed_kmh:
        return None  # a plausible trip: not suspicious by itself
    measured.update(distance_km=round(km, 1), speed_kmh=round(speed, 1) if gap.total_seconds() > 0 else None)
    return Evidence(f"{last.location} to {event.location} ({km:,.0f} km) in {fmt_span(gap)}: "
                    f"faster than {cfg.max_speed_kmh:,.0f} km/h", (last,), measured)


def far_from_usual_signal(event: Event, prior: Sequence[Event], cfg: FarFromUsualSignal) -> Evidence | None:
    here = geo.lookup(event.location)
    if here is None:
        return None
    history = within(prior, event.event_time - cfg.lookback)
    if len(history) < cfg.min_history:
        return None
    places = {e.location.casefold(): e.location for e in history}
    if event.location.casefold() in places:
        return None
    known = [(name, city) for name in places.values() if (city := geo.lookup(name)) is not None]
    if not known:
        return None  # no usual place on the map: nothing to measure from
    nearest, km = min(((name, geo.distance_km(here, city)) for name, city in known), key=lambda x: x[1])
    if km <= cfg.min_km:
        return None
    return Evidence(f"{event.location} is {km:,.0f} km from the nearest usual place ({nearest})", tuple(history),
                    {"location": event.location, "nearest_usual": nearest, "distance_km": round(km, 1)})


def _count_signal(event: Event, prior: Sequence[Event], window: dt.timedelta, min_count: int, what: str,
                  matches: Callable[[Event], bool]) -> Evidence | None:
    if not matches(event):
        return None
    counted = [e for e in within(prior, event.event_time - window) if matches(e)]
    if len(counted) + 1 < min_count:
        return None
    return Evidence(f"{len(counted) + 1} {what} within {fmt_span(window)}", tuple(counted),
                    {"count": len(counted) + 1})


def tiny_amounts_signal(event: Event, prior: Sequence[Event], cfg: TinyAmountsSignal) -> Evidence | None:
    def tiny(e: Event) -> bool:
        return e.type != "refund" and e.amount <= cfg.max_amount
    return _count_signal(event, prior, cfg.window, cfg.min_count,
                         f"payments of at most {fmt_amount(cfg.max_amount)}", tiny)


def declines_signal(event: Event, prior: Sequence[Event], cfg: DeclinesSignal) -> Evidence | None:
    return _count_signal(event, prior, cfg.window, cfg.min_count, "failed payments", lambda e: e.status == "failed")


def refunds_signal(event: Event, prior: Sequence[Event], cfg: RefundsSignal) -> Evidence | None:
    return _count_signal(event, prior, cfg.window, cfg.min_count, "refunds", lambda e: e.type == "refund")


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
    recent = [e for e in within(prior, event.event_time - cfg.window) if _is_purchase(e)]
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
    "fast_travel": fast_travel_signal, "far_from_usual": far_from_usual_signal,
    "tiny_amounts": tiny_amounts_signal, "declines": declines_signal,
    "refunds": refunds_signal, "velocity": velocity_signal,
}
# evaluation order within a typology: those that look at the transaction alone first, then short
# windows, then the long lookbacks
COST = {"high_amount": 0, "tiny_amounts": 1, "declines": 1, "refunds": 1, "amount_vs_usual": 2, "velocity": 3,
        "fast_travel": 3, "new_location": 4, "new_payment_method": 4, "far_from_usual": 5}


class TypologyPlan(NamedTuple):
    """A typology ready to run: its signals cheapest first, with the positive weight still to come."""

    name: str
    typology: Typology
    steps: tuple[tuple[str, float, float], ...]  # (signal, weight, positive weight of the signals after it)
    lowest: float


def plan(ruleset: RuleSet) -> list[TypologyPlan]:
    out = []
    for name, t in ruleset.typologies.items():
        if not t.enabled:
            continue
        ordered = sorted(t.signals.items(), key=lambda kv: (COST[kv[0]], kv[0]))
        steps = []
        for i, (signal, weight) in enumerate(ordered):
            steps.append((signal, weight, sum(max(w, 0.0) for _, w in ordered[i + 1:])))
        out.append(TypologyPlan(name, t, tuple(steps), min(t.thresholds.values())))
    return out


class TypologyHit(NamedTuple):
    name: str
    severity: str
    total: float
    present: dict[str, tuple[float, Evidence]]  # signal -> (weight, evidence)


def weigh(plans: Sequence[TypologyPlan], event: Event, prior: Sequence[Event], ruleset: RuleSet) -> list[TypologyHit]:
    """The typologies whose weighted signals reach a threshold on `event`."""
    seen: dict[str, Evidence | None] = {}
    hits = []
    settings = ruleset.signals
    for p in plans:
        total = 0.0
        present: dict[str, tuple[float, Evidence]] = {}
        for signal, weight, still in p.steps:
            if total + max(weight, 0.0) + still < p.lowest:
                break  # the threshold is out of reach whatever the rest shows
            if signal in seen:
                evidence = seen[signal]
            else:
                evidence = seen[signal] = SIGNALS[signal](event, prior, getattr(settings, signal))
            if evidence is not None:
                total += weight
                present[signal] = (weight, evidence)
        severity = p.typology.severity_of(total) if present else None
        if severity is not None:
            hits.append(TypologyHit(p.name, severity, total, present))
    return hits


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
        "params": {"signals": dict(t.signals), "thresholds": dict(t.thresholds)},
        "measured": {"score": hit.total, "signals": ", ".join(hit.present)},
        "signals": [with_counted({"signal": name, "weight": weight, "reason": ev.reason,
                                  "params": getattr(ruleset.signals, name).model_dump(mode="json"),
                                  "measured": ev.measured or {}}, ev.counted)
                    for name, (weight, ev) in hit.present.items()],
    }, list(counted.values()))
