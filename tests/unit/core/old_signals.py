"""The signals as they were before each window was shared per transaction (issue 29), kept as the
reference the differential tests compare against: every signal scans `prior` itself, and a
typology weighs all of its signals, with no early exit and no sharing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from txnmon.core import geo
from txnmon.core.rules.evidence import COST, SIGNALS, TypologyHit
from txnmon.core.rules.places import _returned, _travel_evidence, trip
from txnmon.core.rules.rulebook import RuleSet
from txnmon.core.rules.state import Event
from txnmon.core.rules.windows import MAX_LISTED, Evidence, fmt_amount, fmt_span, within


def amount_vs_usual(event: Event, prior: Sequence[Event], cfg: Any) -> Evidence | None:
    if event.amount < cfg.min_amount or event.type == "refund":
        return None
    usual = [e for e in within(prior, event.event_time - cfg.lookback) if e.type != "refund"]
    amounts = sorted(e.amount for e in usual)
    if len(amounts) < cfg.min_history:
        return None
    mid = len(amounts) // 2
    median = amounts[mid] if len(amounts) % 2 else (amounts[mid - 1] + amounts[mid]) / 2
    if median <= 0 or event.amount < cfg.factor * median:
        return None
    return Evidence(f"amount {fmt_amount(event.amount)} is {event.amount / median:.1f}x the usual "
                    f"{fmt_amount(median)}", tuple(usual),
                    {"amount": event.amount, "usual_amount": median, "ratio": round(event.amount / median, 2)})


def new_payment_method(event: Event, prior: Sequence[Event], cfg: Any) -> Evidence | None:
    if not event.payment_method:
        return None
    history = [e for e in within(prior, event.event_time - cfg.lookback) if e.payment_method]
    if len(history) < cfg.min_history:
        return None
    method = event.payment_method.casefold()
    if any(e.payment_method.casefold() == method for e in history):
        return None
    used = sorted({e.payment_method for e in history})[:MAX_LISTED]
    return Evidence(f"{event.payment_method} never used before (used: {', '.join(used[:3])})", tuple(history),
                    {"payment_method": event.payment_method, "used": used})


def _count(event: Event, prior: Sequence[Event], window: dt.timedelta, min_count: int, what: str,
           matches: Callable[[Event], bool]) -> Evidence | None:
    if not matches(event):
        return None
    counted = [e for e in within(prior, event.event_time - window) if matches(e)]
    if len(counted) + 1 < min_count:
        return None
    return Evidence(f"{len(counted) + 1} {what} within {fmt_span(window)}", tuple(counted),
                    {"count": len(counted) + 1})


def tiny_amounts(event: Event, prior: Sequence[Event], cfg: Any) -> Evidence | None:
    return _count(event, prior, cfg.window, cfg.min_count, f"payments of at most {fmt_amount(cfg.max_amount)}",
                  lambda e: e.type != "refund" and e.amount <= cfg.max_amount)


def declines(event: Event, prior: Sequence[Event], cfg: Any) -> Evidence | None:
    return _count(event, prior, cfg.window, cfg.min_count, "failed payments", lambda e: e.status == "failed")


def refunds(event: Event, prior: Sequence[Event], cfg: Any) -> Evidence | None:
    return _count(event, prior, cfg.window, cfg.min_count, "refunds", lambda e: e.type == "refund")


def new_location(event: Event, prior: Sequence[Event], cfg: Any) -> Evidence | None:
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


def new_country(event: Event, prior: Sequence[Event], cfg: Any) -> Evidence | None:
    country = geo.country_of(event.location)
    if country is None:
        return None
    history = [e for e in within(prior, event.event_time - cfg.lookback) if geo.country_of(e.location) is not None]
    if len(history) < cfg.min_history:
        return None
    used = {geo.country_of(e.location) for e in history}
    if country in used:
        return None
    listed = sorted(c for c in used if c)[:MAX_LISTED]
    return Evidence(f"first transaction from {country} in {fmt_span(cfg.lookback)} (used: {', '.join(listed[:3])})",
                    tuple(history), {"country": country, "used": listed})


def fast_travel(event: Event, prior: Sequence[Event], cfg: Any) -> Evidence | None:
    here, since = event.location.casefold(), event.event_time - cfg.window
    here_times: list[dt.datetime] | None = None
    for last in reversed(prior):
        if last.event_time < since:
            break
        if last.location == event.location or last.location.casefold() == here:
            continue
        gap = event.event_time - last.event_time
        found = trip(last, event, gap)
        if found is None:
            if gap > cfg.unknown_city_window:
                continue
        elif found.speed_kmh <= cfg.max_speed_kmh:
            continue
        if cfg.usual_lookback is not None:
            if here_times is None:
                here_times = [e.event_time for e in prior if e.location.casefold() == here]  # the whole history
            if _returned(here_times, event, last, cfg):
                continue
        return _travel_evidence(last, event, gap, found, cfg)
    return None


def far_from_usual(event: Event, prior: Sequence[Event], cfg: Any) -> Evidence | None:
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
        return None
    nearest, km = min(((name, geo.distance_km(here, city)) for name, city in known), key=lambda x: x[1])
    if km <= cfg.min_km:
        return None
    return Evidence(f"{event.location} is {km:,.0f} km from the nearest usual place ({nearest})", tuple(history),
                    {"location": event.location, "nearest_usual": nearest, "distance_km": round(km, 1)})


OLD_SIGNALS = {**SIGNALS, "amount_vs_usual": amount_vs_usual, "new_payment_method": new_payment_method,
               "tiny_amounts": tiny_amounts, "declines": declines, "refunds": refunds, "new_location": new_location,
               "new_country": new_country, "fast_travel": fast_travel, "far_from_usual": far_from_usual}


def old_weigh(ruleset: RuleSet, event: Event, prior: Sequence[Event]) -> list[TypologyHit]:
    """Every enabled typology with every one of its signals computed from a plain list, summed."""
    prior = list(prior)
    hits = []
    for name, t in ruleset.typologies.items():
        if not t.enabled:
            continue
        present = {}
        for signal, weight in sorted(t.signals.items(), key=lambda kv: (COST[kv[0]], kv[0])):  # as summed before
            if signal == "model_score":
                continue
            found = OLD_SIGNALS[signal](event, prior, getattr(ruleset.signals, signal))
            if found is not None:
                present[signal] = (weight, found)
        total = sum(w for w, _ in present.values())
        severity = t.severity_of(total) if present else None
        if severity is not None:
            hits.append(TypologyHit(name, severity, total, present))
    return hits
