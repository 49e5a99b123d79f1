"""The `Detector` that runs the fraud rules (src/txnmon/core/rules/conditions.py: one plain function
per rule) and typologies (src/txnmon/core/rules/evidence.py) in event time, and the alert documents.

The processor and offline analysis (backtest) both call `Detector.observe(tx)`, so nothing is
re-implemented for analysis. No I/O and no clock here: state arrives through `preload`.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from txnmon.core.lists import ListIndex
from txnmon.core.rules.conditions import (
    RULE_NAMES,
    Hit,
    RuleFn,
    explain,
    listed_rule,
    rule_functions,
    silence_trusted,
)
from txnmon.core.rules.evidence import TypologyHit, plan, typology_explanation, typology_reason, weigh
from txnmon.core.rules.late_pairs import completed_by, pair_plans, pair_window
from txnmon.core.rules.model_signal import ModelScore
from txnmon.core.rules.rulebook import RuleSet
from txnmon.core.rules.state import Event, UserStateStore, event_from
from txnmon.core.rules.windows import shared

# what callers take from here (the rules' own names are in src/txnmon/core/rules/conditions.py)
__all__ = ["RULE_NAMES", "Detector", "Hit", "Judgement", "alert_document", "completed_alerts", "evaluate",
           "owner_of", "risk_score"]


class Judgement(NamedTuple):
    """What `Detector.judge` found for one transaction, before it joins the user's history (a tuple:
    made per transaction, where a frozen dataclass's checked setting of seven fields cost ~1.5 µs)."""

    user_id: str
    event: Event
    hits: list[Hit]
    raised: dict[str, tuple[dt.datetime, str]]  # rule -> (event time, alert id) this hit raises
    # rule -> the user's entry `raised` replaces (None: there was none), so `forget` can put it back
    # (no default: a tuple's would be one dict shared by every judgement)
    replaced: dict[str, tuple[dt.datetime, str] | None]
    # a late arrival: the alerts it completes on the user's later transactions (src/txnmon/core/rules/late_pairs.py)
    completed: tuple[tuple[Event, Hit], ...] = ()
    model: ModelScore | None = None  # the promoted model's score of it, when a model is in use


def _apply(rules: Sequence[tuple[str, Any, RuleFn]], event: Event, prior: Sequence[Event],
           ruleset: RuleSet | None = None) -> list[Hit]:
    hits = []
    for name, cfg, fn in rules:
        reason = fn(event, prior)
        if reason is not None:
            why = explain(name, event, prior, ruleset) if ruleset is not None else None
            hits.append(Hit(name, cfg.severity, cfg.score, reason, cfg.mode, explanation=why))
    return hits


def _typology_hit(found: TypologyHit, ruleset: RuleSet) -> Hit:
    return Hit(found.name, found.severity, max(0.0, min(100.0, found.total)), typology_reason(found),
               ruleset.typologies[found.name].mode, explanation=typology_explanation(found, ruleset))


def _typology_hits(plans: Sequence[Any], event: Event, prior: Sequence[Event], ruleset: RuleSet,
                   model: ModelScore | None = None, modelled: bool | None = None) -> list[Hit]:
    return [_typology_hit(found, ruleset) for found in weigh(plans, event, prior, ruleset, model, modelled)]


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
        self._pairs = pair_plans(self._typologies)
        self._pair_window = pair_window(ruleset, self._pairs)
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
        self._pairs = pair_plans(self._typologies)
        self._pair_window = pair_window(ruleset, self._pairs)
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

    def recorded(self, tx: Mapping[str, Any]) -> Event | None:
        """The event this transaction's id was recorded with in its user's history (judged before), if
        the history still holds it."""
        return self.state.recorded(str(tx["user_id"]), str(tx["transaction_id"]))

    def judge(self, tx: Mapping[str, Any], model: ModelScore | None = None, modelled: bool | None = None) -> Judgement:
        """The rules this transaction trips, given the user's history so far; changes nothing.
        `model`: the promoted model's score of it (src/txnmon/core/scoring.py), for the `model_score` signal;
        `modelled`: a model is in use though this transaction has no score (default: whether `model` is given).

        Repeats inside a rule's `suppress_for` window come back with `suppressed_by` set.
        `record(judgement)` then adds the transaction to the history, so a failure between the two
        (enrichment, storing) leaves the user's state as it was.
        """
        event = event_from(tx)
        user_id = str(tx["user_id"])
        # the rules and typologies share each window they scan, and what they work out from it
        prior = shared(self.state.prior(user_id, event))
        hits = _apply(self._rules, event, prior, self.ruleset)
        if self._typologies:
            hits += _typology_hits(self._typologies, event, prior, self.ruleset, model, modelled)
        if self.lists:
            listed = listed_rule(tx, event, self.ruleset.rules.listed, self.lists) \
                if self.ruleset.rules.listed.enabled else None
            hits = silence_trusted([*hits, listed] if listed else hits, user_id, event.event_time, self.lists)
        raised: dict[str, tuple[dt.datetime, str]] = {}
        replaced: dict[str, tuple[dt.datetime, str] | None] = {}
        if hits and self._suppressing:
            known = self.state.raised_of(user_id)
            hits = [self._suppress(hit, event, known, raised, replaced) for hit in hits]
        completed = self._completed(user_id, event, raised, replaced,
                                    model is not None if modelled is None else modelled)
        return Judgement(user_id, event, hits, raised, replaced, completed, model)

    def _suppress(self, hit: Hit, about: Event, known: Mapping[str, tuple[dt.datetime, str]],
                  raised: dict[str, tuple[dt.datetime, str]],
                  replaced: dict[str, tuple[dt.datetime, str] | None]) -> Hit:
        """A live hit within its rule's `suppress_for` window after the user's latest alert of that
        rule comes back suppressed by it; otherwise it is raised, and becomes that latest alert if it
        is newer (`raised`; `replaced` keeps the entry it replaces, for `forget`)."""
        window = self._suppressing.get(hit.rule)
        if window is None or hit.mode != "live" or hit.suppressed_by:
            return hit
        last = raised.get(hit.rule) or known.get(hit.rule)
        alert_id = f"{about.transaction_id}:{hit.rule}"
        if last is not None and last[1] != alert_id and last[0] <= about.event_time < last[0] + window:
            return replace(hit, suppressed_by=last[1])
        if last is None or about.event_time >= last[0]:
            replaced.setdefault(hit.rule, known.get(hit.rule))
            raised[hit.rule] = (about.event_time, alert_id)
        return hit

    def _completed(self, user_id: str, event: Event, raised: dict[str, tuple[dt.datetime, str]],
                   replaced: dict[str, tuple[dt.datetime, str] | None],
                   modelled: bool = False) -> tuple[tuple[Event, Hit], ...]:
        """The alerts a late arrival completes on the user's later transactions, trusted users'
        and repeats within a `suppress_for` window coming back suppressed, as any hit does.
        `modelled`: a model is in use (the typologies' `thresholds_with_model` hold)."""
        history = self.state.later_than(user_id, event) if self._pairs else []
        if not history:
            return ()
        known = self.state.raised_of(user_id)
        out = []
        for later, found in completed_by(event, history, self._pairs, self.ruleset, self._pair_window, modelled):
            hit = _typology_hit(found, self.ruleset)
            if self.lists:
                hit = silence_trusted([hit], user_id, later.event_time, self.lists)[0]
            if self._suppressing:
                hit = self._suppress(hit, later, known, raised, replaced)
            out.append((later, hit))
        return tuple(out)

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

    def forget(self, user_id: str, transaction_id: str, judgement: Judgement | None = None) -> None:
        """Take a transaction back out of its user's history (it was refused after judging, or was a
        re-send). A suppression entry it set goes back to the one it replaced (from its `judgement`):
        a dropped re-send of an alerted transaction replaced the original's entry with an equal one,
        which must stay, or the next alert in the window is raised instead of suppressed."""
        if user_id in self.state:
            history = self.state.get(user_id)
            history.remove(transaction_id)
            before = judgement.replaced if judgement is not None else {}
            set_by_it = set(judgement.raised.values()) if judgement is not None else set()  # completed ones too
            for rule, (t, alert_id) in list(history.raised.items()):
                if alert_id.startswith(f"{transaction_id}:") or (t, alert_id) in set_by_it:
                    previous = before.get(rule)
                    if previous is None:
                        history.drop_raised(rule)
                    else:
                        history.note_raised(rule, *previous)

    def end_batch(self) -> int:
        evicted = self.state.evict_idle()
        self.state.end_batch()
        return evicted

    def reset(self) -> None:
        """Forget all users (after a partition reassignment); they are reloaded on demand."""
        self.state.clear()


def completed_alerts(judgement: Judgement, tx: Mapping[str, Any], *, created_at: dt.datetime,
                     rules_version: str) -> list[dict[str, Any]]:
    """The alerts a late transaction `tx` completes, on the later transactions they are about, each
    naming `tx` in `completed_by` (the batch drops them with it if it is dropped)."""
    out = []
    for later, hit in judgement.completed:
        about = {"transaction_id": later.transaction_id, "user_id": tx["user_id"], "amount": later.amount,
                 "location": later.location, "event_time": later.event_time}
        doc = {**alert_document(about, hit, created_at=created_at, rules_version=rules_version),
               "completed_by": tx["transaction_id"]}
        out.append({**doc, "suppressed_by": hit.suppressed_by} if hit.suppressed_by else doc)
    return out


def owner_of(alert: Mapping[str, Any]) -> str:
    """The batch's transaction an alert document came from: the one it is about, or the late one
    that completed it (src/txnmon/core/rules/late_pairs.py). Refusals and case order go by it."""
    return str(alert.get("completed_by") or alert["transaction_id"])


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
