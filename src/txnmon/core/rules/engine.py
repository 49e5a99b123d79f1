"""The fraud rules: one plain function per rule, and the `Detector` that runs them in event time.

The processor and offline analysis (backtest) both call `Detector.observe(tx)`, so nothing is
re-implemented for analysis. No I/O and no clock here: state arrives through `preload`.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from txnmon.core import geo
from txnmon.core.lists import ListIndex
from txnmon.core.rules.evidence import fmt_amount, fmt_span, plan, typology_explanation, typology_reason, weigh
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
from txnmon.core.rules.state import Event, UserStateStore, event_from


@dataclass(frozen=True)
class Judgement:
    """What `Detector.judge` found for one transaction, before it joins the user's history."""

    user_id: str
    event: Event
    hits: list[Hit]
    raised: dict[str, tuple[dt.datetime, str]]  # rule -> (event time, alert id) this hit raises


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


def _within(prior: Sequence[Event], since: dt.datetime) -> list[Event]:
    # prior is sorted by event time: walk back from the newest until outside the window
    out: list[Event] = []
    for event in reversed(prior):
        if event.event_time < since:
            break
        out.append(event)
    return out


# --- the rules: (transaction event, the user's earlier events, settings) -> reason or None ---


def high_amount_rule(event: Event, prior: Sequence[Event], cfg: HighAmount) -> str | None:
    if event.amount > cfg.threshold:
        return f"amount {fmt_amount(event.amount)} is above the {fmt_amount(cfg.threshold)} limit"
    return None


def velocity_rule(event: Event, prior: Sequence[Event], cfg: Velocity) -> str | None:
    recent = _within(prior, event.event_time - cfg.window)
    count = len(recent) + 1
    if count > cfg.max_transactions:
        span = event.event_time - recent[-1].event_time
        return (f"{count} transactions in {fmt_span(span)} "
                f"(more than {cfg.max_transactions} within {fmt_span(cfg.window)})")
    return None


def unusual_location_rule(event: Event, prior: Sequence[Event], cfg: UnusualLocation) -> str | None:
    history = _within(prior, event.event_time - cfg.lookback)
    if len(history) < cfg.min_history:
        return None
    usual = {e.location.casefold() for e in history}
    if event.location.casefold() in usual or len(usual) > cfg.max_known_locations:
        # a user who already shops in many places has no pattern for a new city to break
        return None
    top = sorted({e.location for e in history})[:3]
    return (f"first transaction from {event.location} in {fmt_span(cfg.lookback)} "
            f"(usual: {', '.join(top)})")


def impossible_travel_rule(event: Event, prior: Sequence[Event], cfg: ImpossibleTravel) -> str | None:
    if not prior:
        return None
    last = prior[-1]
    if last.location.casefold() == event.location.casefold():
        return None
    gap = event.event_time - last.event_time
    if gap > cfg.window:
        return None
    here, there = geo.lookup(event.location), geo.lookup(last.location)
    if here is None or there is None:
        # cities missing from the coordinates table: a change of city this fast is suspect
        return f"{last.location} to {event.location} within {fmt_span(gap)}"
    km = geo.distance_km(here, there)
    hours = gap.total_seconds() / 3600
    speed = km / hours if hours > 0 else float("inf")
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
    count = 1 + sum(1 for e in _within(prior, event.event_time - window) if matches(e))
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


def _ids(events: Iterable[Event]) -> list[str]:
    return [e.transaction_id for e in sorted(events, key=lambda e: e.key)]


def explain(name: str, event: Event, prior: Sequence[Event], ruleset: RuleSet) -> dict[str, Any]:
    """Why `name` fired on `event`: its parameters, the prior events it counted (ids, oldest first)
    and, where it matters, what it measured. Computed only for hits, from the same data as the rule."""
    r = ruleset.rules
    cfg = getattr(r, name)
    out: dict[str, Any] = {"rule": name, "params": _params(cfg), "counted": [], "rules_version": ruleset.version}
    if name == "high_amount":
        out["measured"] = {"amount": event.amount}
    elif name == "velocity":
        recent = _within(prior, event.event_time - cfg.window)
        out["counted"] = _ids(recent)
        out["measured"] = {"transactions": len(recent) + 1,
                           "span_s": (event.event_time - min(e.event_time for e in recent)).total_seconds()
                           if recent else 0.0}
    elif name in ("unusual_location", "high_value_unusual_location"):
        history = _within(prior, event.event_time - r.unusual_location.lookback)
        out["counted"] = _ids(history)
        out["measured"] = {"location": event.location, "usual": sorted({e.location for e in history}),
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
        counted = [e for e in _within(prior, event.event_time - cfg.window) if matches(e)]
        out["counted"] = _ids(counted)
        out["measured"] = {"count": len(counted) + 1}
    return out


def _apply(rules: Sequence[tuple[str, Any, RuleFn]], event: Event, prior: Sequence[Event],
           ruleset: RuleSet | None = None) -> list[Hit]:
    hits = []
    for name, cfg, fn in rules:
        reason = fn(event, prior)
        if reason is not None:
            why = explain(name, event, prior, ruleset) if ruleset is not None else None
            hits.append(Hit(name, cfg.severity, cfg.score, reason, cfg.mode, explanation=why))
    return hits


def _typology_hits(plans: Sequence[Any], event: Event, prior: Sequence[Event], ruleset: RuleSet) -> list[Hit]:
    out = []
    for found in weigh(plans, event, prior, ruleset):
        t = ruleset.typologies[found.name]
        out.append(Hit(found.name, found.severity, max(0.0, min(100.0, found.total)), typology_reason(found),
                       t.mode, explanation=typology_explanation(found, ruleset)))
    return out


def evaluate(event: Event, prior: Sequence[Event], ruleset: RuleSet) -> list[Hit]:
    """Every rule and typology that fires on `event` given the user's earlier events."""
    return [*_apply(rule_functions(ruleset), event, prior, ruleset),
            *_typology_hits(plan(ruleset), event, prior, ruleset)]


def risk_score(hits: Iterable[Hit]) -> int:
    """0-100: rule scores combined as independent evidence, 1 - prod(1 - s/100)."""
    remaining = 1.0
    for hit in hits:
        remaining *= 1 - hit.score / 100
    return round(100 * (1 - remaining))


def _suppression_windows(ruleset: RuleSet) -> dict[str, dt.timedelta]:
    windows = {name: cfg.suppress_for for name, cfg, _ in rule_functions(ruleset) if cfg.suppress_for}
    windows.update({name: t.suppress_for for name, t in ruleset.typologies.items() if t.enabled and t.suppress_for})
    return windows


class Detector:
    """Runs a rule set over transactions in event time, keeping bounded per-user state."""

    def __init__(self, ruleset: RuleSet, *, unbounded_users: bool = False) -> None:
        # unbounded_users: users leave only by idling past every window (the processor, whose state
        # changelog must match memory), not by the rules file's max_users count
        self.unbounded_users = unbounded_users
        self.ruleset = ruleset
        self.state = UserStateStore(sys.maxsize if unbounded_users else ruleset.state.max_users,
                                    ruleset.state.max_events_per_user, ruleset.history_window())
        self._rules = rule_functions(ruleset)
        self._typologies = plan(ruleset)
        self._suppressing = _suppression_windows(ruleset)
        self.lists = ListIndex()

    def use_lists(self, lists: ListIndex) -> None:
        """Switch the named lists between batches (the processor reloads them every few seconds)."""
        self.lists = lists

    def use_rules(self, ruleset: RuleSet) -> None:
        """Switch rule sets between batches; user history is kept (it is the same data)."""
        self.ruleset = ruleset
        self._rules = rule_functions(ruleset)
        self._typologies = plan(ruleset)
        self._suppressing = _suppression_windows(ruleset)
        self.state.horizon = ruleset.history_window()
        self.state.max_users = sys.maxsize if self.unbounded_users else ruleset.state.max_users
        self.state.max_events_per_user = ruleset.state.max_events_per_user

    @property
    def version(self) -> str:
        return self.ruleset.version

    def missing_users(self, user_ids: Iterable[str]) -> set[str]:
        return self.state.missing(user_ids)

    def preload(self, history: Mapping[str, Iterable[Mapping[str, Any]]]) -> None:
        """Seed users' histories from stored transactions (after a restart or a rebalance)."""
        for user_id, txs in history.items():
            self.state.preload(user_id, (event_from(tx) for tx in txs))

    def export_state(self, user_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Users' histories as plain documents (what `import_state` reads back after a restart)."""
        out = {}
        for user_id in user_ids:
            if user_id not in self.state:
                continue
            history = self.state.get(user_id)
            out[user_id] = {
                "events": [list(e) for e in history.events],
                "raised": {rule: [t, alert_id] for rule, (t, alert_id) in history.raised.items()},
            }
        return out

    def export_packed(self, user_ids: Iterable[str]) -> dict[str, tuple[bytes, Mapping[str, tuple[dt.datetime, str]]]]:
        """Users' state as the changelog keeps it (packed events, raised alerts): no decoding."""
        return {u: self.state.packed(u) for u in user_ids if u in self.state}

    def import_packed(self, user_id: str, events: bytes, raised: Mapping[str, tuple[dt.datetime, str]]) -> None:
        """Set a user's state from `export_packed` output (replacing what was there)."""
        self.state.load_packed(user_id, events, raised)

    def import_state(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        """Seed users from `export_state` documents; users without a document start empty."""
        for user_id, doc in states.items():
            self.state.preload(user_id, (Event(*e) for e in doc.get("events", ())))
            history = self.state.get(user_id)
            for rule, (t, alert_id) in doc.get("raised", {}).items():
                current = history.raised.get(rule)
                if current is None or t > current[0]:
                    history.note_raised(rule, t, alert_id)

    def judge(self, tx: Mapping[str, Any]) -> Judgement:
        """The rules this transaction trips, given the user's history so far; changes nothing.

        Repeats inside a rule's `suppress_for` window come back with `suppressed_by` set.
        `record(judgement)` then adds the transaction to the history, so a failure between the two
        (enrichment, storing) leaves the user's state as it was.
        """
        event = event_from(tx)
        user_id = str(tx["user_id"])
        prior = self.state.prior(user_id, event)
        hits = _apply(self._rules, event, prior, self.ruleset)
        if self._typologies:
            hits += _typology_hits(self._typologies, event, prior, self.ruleset)
        if len(self.lists):
            listed = listed_rule(tx, event, self.ruleset.rules.listed, self.lists) \
                if self.ruleset.rules.listed.enabled else None
            hits = silence_trusted([*hits, listed] if listed else hits, user_id, event.event_time, self.lists)
        raised: dict[str, tuple[dt.datetime, str]] = {}
        if hits and self._suppressing:
            known = self.state.raised_of(user_id)
            out = []
            for hit in hits:
                window = self._suppressing.get(hit.rule)
                if window is None or hit.mode != "live" or hit.suppressed_by:
                    out.append(hit)
                    continue
                last = known.get(hit.rule)
                alert_id = f"{event.transaction_id}:{hit.rule}"
                if last is not None and last[1] != alert_id and last[0] <= event.event_time < last[0] + window:
                    out.append(replace(hit, suppressed_by=last[1]))
                else:
                    if last is None or event.event_time >= last[0]:
                        raised[hit.rule] = (event.event_time, alert_id)
                    out.append(hit)
            hits = out
        return Judgement(user_id, event, hits, raised)

    def record(self, judgement: Judgement) -> None:
        """Add a judged transaction to its user's history (and its raised alerts, for suppression)."""
        self.state.record(judgement.user_id, judgement.event)
        if judgement.raised:
            history = self.state.get(judgement.user_id)
            for rule, (t, alert_id) in judgement.raised.items():
                history.note_raised(rule, t, alert_id)

    def observe(self, tx: Mapping[str, Any]) -> list[Hit]:
        """Judge and record in one step (the backtest's way)."""
        judgement = self.judge(tx)
        self.record(judgement)
        return judgement.hits

    def forget(self, user_id: str, transaction_id: str) -> None:
        """Take a transaction back out of its user's history (it was refused after judging)."""
        if user_id in self.state:
            history = self.state.get(user_id)
            history.remove(transaction_id)
            for rule, (_, alert_id) in list(history.raised.items()):
                if alert_id.startswith(f"{transaction_id}:"):
                    history.drop_raised(rule)

    def end_batch(self) -> int:
        return self.state.evict_idle()

    def reset(self) -> None:
        """Forget all users (after a partition reassignment); they are reloaded on demand."""
        self.state.clear()


def alert_document(tx: Mapping[str, Any], hit: Hit, *, created_at: dt.datetime, rules_version: str) -> dict[str, Any]:
    """The stored alert: `_id` = alert_id = "<transaction_id>:<rule>" so a redelivery is a no-op."""
    alert_id = f"{tx['transaction_id']}:{hit.rule}"
    return {
        "_id": alert_id,
        "alert_id": alert_id,
        "transaction_id": tx["transaction_id"],
        "user_id": tx["user_id"],
        "rule": hit.rule,
        "severity": hit.severity,
        "reason": hit.reason,
        "amount": tx["amount"],
        "location": tx["location"],
        "event_time": tx["event_time"],
        "created_at": created_at,
        "rules_version": rules_version,
        "mode": hit.mode,
        **({"explanation": hit.explanation} if hit.explanation is not None else {}),
    }
