"""The single-condition rules (the rules file's `rules:`): one plain function per rule, the `listed`
rule, and why each fired (`explain`). The typologies weigh evidence instead (src/txnmon/core/rules/evidence.py);
the `Detector` runs both (src/txnmon/core/rules/engine.py). No I/O and no clock here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from txnmon.core import geo
from txnmon.core.lists import ListIndex
from txnmon.core.rules.places import places_of, recent_move, travel_speed
from txnmon.core.rules.rulebook import (
    ExcessiveRefunds,
    HighAmount,
    HighValueUnusualLocation,
    ImpossibleTravel,
    RepeatedFailedPayments,
    RuleSet,
    UnusualLocation,
    Velocity,
)
from txnmon.core.rules.state import Event
from txnmon.core.rules.windows import MAX_LISTED, derived, fmt_amount, fmt_span, with_counted, within


@dataclass(frozen=True)
class Hit:
    """One rule firing on one transaction."""

    rule: str
    severity: str
    score: float
    reason: str
    mode: str = "live"
    suppressed_by: str | None = None  # the earlier alert this repeat is folded into
    # why it fired: the rule's parameters and the ids of the prior events it counted (see `explain`)
    explanation: dict[str, Any] | None = field(default=None, compare=False, hash=False)


# --- the rules: (transaction event, the user's earlier events, settings) -> reason or None ---


def high_amount_rule(event: Event, prior: Sequence[Event], cfg: HighAmount) -> str | None:
    if event.amount > cfg.threshold:
        return f"amount {fmt_amount(event.amount)} is above the {fmt_amount(cfg.threshold)} limit"
    return None


def velocity_rule(event: Event, prior: Sequence[Event], cfg: Velocity) -> str | None:
    recent = within(prior, event.event_time - cfg.window)
    count = len(recent) + 1
    if count > cfg.max_transactions:
        span = event.event_time - recent[-1].event_time
        return (f"{count} transactions in {fmt_span(span)} "
                f"(more than {cfg.max_transactions} within {fmt_span(cfg.window)})")
    return None


def unusual_location_rule(event: Event, prior: Sequence[Event], cfg: UnusualLocation) -> str | None:
    since = event.event_time - cfg.lookback
    history = within(prior, since)
    if len(history) < cfg.min_history:
        return None
    usual = derived(prior, "places", since, places_of)
    if event.location.casefold() in usual or len(usual) > cfg.max_known_locations:
        # a user who already shops in many places has no pattern for a new city to break
        return None
    top = sorted({e.location for e in history})[:3]
    return (f"first transaction from {event.location} in {fmt_span(cfg.lookback)} "
            f"(usual: {', '.join(top)})")


def impossible_travel_rule(event: Event, prior: Sequence[Event], cfg: ImpossibleTravel) -> str | None:
    move = recent_move(event, prior, cfg.window)
    if move is None:
        return None
    last, gap = move
    trip = travel_speed(last, event, gap)
    if trip is None:
        # cities missing from the coordinates table: a change of city this fast is suspect
        return f"{last.location} to {event.location} within {fmt_span(gap)}"
    km, speed = trip
    if speed > cfg.max_speed_kmh:
        return (f"{last.location} to {event.location} ({km:,.0f} km) in {fmt_span(gap)}: "
                f"faster than {cfg.max_speed_kmh:,.0f} km/h")
    return None


def high_value_unusual_location_rule(
    event: Event, prior: Sequence[Event], cfg: HighValueUnusualLocation, location_cfg: UnusualLocation
) -> str | None:
    if event.amount < cfg.min_amount:
        return None
    unusual = unusual_location_rule(event, prior, location_cfg)
    if unusual is None:
        return None
    return f"amount {fmt_amount(event.amount)} from an unusual location: {unusual}"


def _repeats(event: Event, prior: Sequence[Event], window: dt.timedelta, limit: int, what: str,
             matches: Callable[[Event], bool]) -> str | None:
    """More than `limit` matching events (this one included) within `window` before it."""
    if not matches(event):
        return None
    count = 1 + sum(1 for e in within(prior, event.event_time - window) if matches(e))
    if count > limit:
        return f"{count} {what} within {fmt_span(window)} (more than {limit})"
    return None


def excessive_refunds_rule(event: Event, prior: Sequence[Event], cfg: ExcessiveRefunds) -> str | None:
    return _repeats(event, prior, cfg.window, cfg.max_refunds, "refunds", lambda e: e.type == "refund")


def repeated_failed_payments_rule(event: Event, prior: Sequence[Event], cfg: RepeatedFailedPayments) -> str | None:
    return _repeats(event, prior, cfg.window, cfg.max_failures, "failed payments", lambda e: e.status == "failed")


RuleFn = Callable[[Event, Sequence[Event]], "str | None"]


def rule_functions(ruleset: RuleSet) -> list[tuple[str, Any, RuleFn]]:
    """(name, settings, bound function) for every enabled rule, in a fixed order."""
    r = ruleset.rules
    table: list[tuple[str, Any, RuleFn]] = [
        ("high_amount", r.high_amount, lambda e, p: high_amount_rule(e, p, r.high_amount)),
        ("velocity", r.velocity, lambda e, p: velocity_rule(e, p, r.velocity)),
        ("unusual_location", r.unusual_location, lambda e, p: unusual_location_rule(e, p, r.unusual_location)),
        ("impossible_travel", r.impossible_travel, lambda e, p: impossible_travel_rule(e, p, r.impossible_travel)),
        ("high_value_unusual_location", r.high_value_unusual_location,
         lambda e, p: high_value_unusual_location_rule(e, p, r.high_value_unusual_location, r.unusual_location)),
        ("excessive_refunds", r.excessive_refunds, lambda e, p: excessive_refunds_rule(e, p, r.excessive_refunds)),
        ("repeated_failed_payments", r.repeated_failed_payments,
         lambda e, p: repeated_failed_payments_rule(e, p, r.repeated_failed_payments)),
    ]
    return [row for row in table if row[1].enabled]


# the rules, then the typologies of the bundled rules file (what the desk's pickers offer; a
# typology of another name is still accepted where the current rules file is at hand)
RULE_NAMES = ("high_amount", "velocity", "unusual_location", "impossible_travel", "high_value_unusual_location",
              "excessive_refunds", "repeated_failed_payments", "listed", "card_testing", "account_takeover",
              "refund_abuse")


def listed_rule(tx: Mapping[str, Any], event: Event, cfg: Any, lists: ListIndex) -> Hit | None:
    """The transaction's fields on named lists at its event time: one hit naming every match."""
    found = []
    for check in cfg.checks:
        value = tx.get(check.field)
        if value is None:
            continue
        entry = lists.member(check.list, value, event.event_time)
        if entry is not None:
            found.append((check, value, entry))
    if not found:
        return None
    reason = "; ".join(f"{check.field} {value} is on {check.list} ({entry['reason']}, added by {entry['added_by']})"
                       for check, value, entry in found)
    why = {"rule": "listed", "params": _params(cfg), "counted": [],
           "entries": [{"_id": e["_id"], "list": c.list, "field": c.field, "reason": e["reason"],
                        "added_by": e["added_by"], "expires_at": e.get("expires_at")} for c, _, e in found]}
    return Hit("listed", cfg.severity, cfg.score, reason, cfg.mode, explanation=why)


def silence_trusted(hits: list[Hit], user_id: str, at: dt.datetime, lists: ListIndex) -> list[Hit]:
    """Live hits of a rule the user is trusted for (an active trusted_users entry) are recorded as
    suppressed by that entry, never raised."""
    out = []
    for hit in hits:
        entry = lists.trust(user_id, hit.rule, at) if hit.mode == "live" else None
        out.append(replace(hit, suppressed_by=f"list:{entry['_id']}") if entry is not None else hit)
    return out


def _params(cfg: Any) -> dict[str, Any]:
    return cfg.model_dump(mode="json", exclude={"enabled", "mode"})


def explain(name: str, event: Event, prior: Sequence[Event], ruleset: RuleSet) -> dict[str, Any]:
    """Why `name` fired on `event`: its parameters, the prior events it counted (ids, oldest first)
    and, where it matters, what it measured. Computed only for hits, from the same data as the rule."""
    r = ruleset.rules
    cfg = getattr(r, name)
    out: dict[str, Any] = {"rule": name, "params": _params(cfg), "counted": [], "rules_version": ruleset.version}
    if name == "high_amount":
        out["measured"] = {"amount": event.amount}
    elif name == "velocity":
        recent = within(prior, event.event_time - cfg.window)
        with_counted(out, recent)
        out["measured"] = {"transactions": len(recent) + 1,
                           "span_s": (event.event_time - min(e.event_time for e in recent)).total_seconds()
                           if recent else 0.0}
    elif name in ("unusual_location", "high_value_unusual_location"):
        history = within(prior, event.event_time - r.unusual_location.lookback)
        with_counted(out, history)
        out["measured"] = {"location": event.location, "usual": sorted({e.location for e in history})[:MAX_LISTED],
                           "amount": event.amount}
        if name == "high_value_unusual_location":
            out["params"]["unusual_location"] = _params(r.unusual_location)
    elif name == "impossible_travel" and prior:
        last = prior[-1]
        here, there = geo.lookup(event.location), geo.lookup(last.location)
        km = geo.distance_km(here, there) if here is not None and there is not None else None
        gap = (event.event_time - last.event_time).total_seconds()
        out["counted"] = [last.transaction_id]
        out["measured"] = {"previous_location": last.location, "location": event.location,
                           "distance_km": round(km, 1) if km is not None else None, "gap_s": gap,
                           "speed_kmh": round(km / (gap / 3600), 1) if km is not None and gap > 0 else None}
    elif name in ("excessive_refunds", "repeated_failed_payments"):
        def matches(e: Event) -> bool:
            return e.type == "refund" if name == "excessive_refunds" else e.status == "failed"
        counted = [e for e in within(prior, event.event_time - cfg.window) if matches(e)]
        with_counted(out, counted)
        out["measured"] = {"count": len(counted) + 1}
    return out
