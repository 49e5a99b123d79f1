"""The risk model in the judging path: a batch's transactions scored in one vectorised call, before
they are judged, and the top contributing features of the high scores said against the user's own
baseline. The processor (src/txnmon/core/batch.py) and the backtest (src/txnmon/core/backtest.py) both
call `score_batch`, so the same transaction gets the same score in both.

A transaction's features are those training computes (src/txnmon/core/features.py): the event against
the user's history as the detector holds it just before judging it. Within a batch a user's earlier
transactions join that history as they are judged, so the features are computed on a scratch copy of the
batch's users' events that records each transaction in turn as the detector will: the detector's own
state is not changed. Pure: the model comes in (`Scorer`).
"""

from __future__ import annotations

import bisect
import logging
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from txnmon.core import features
from txnmon.core.rules import Detector
from txnmon.core.rules.model_signal import Factor, ModelScore
from txnmon.core.rules.packed import as_stored
from txnmon.core.rules.state import Event, UserStateStore, event_from
from txnmon.core.rules.windows import fmt_amount

__all__ = ["Factor", "ModelScore", "Scorer", "batch_features", "describe", "score_batch", "scores_of", "top_factors",
           "worth_scoring"]
log = logging.getLogger("txnmon.stream")


class Scorer(Protocol):
    """A loaded model (src/txnmon/jobs/models.py `LoadedModel`): its version, fraud probabilities, and
    per-feature contributions (one list per row, the features' then the bias)."""

    @property
    def version(self) -> str: ...

    def score(self, rows: Sequence[Sequence[float]]) -> list[float]: ...

    def contributions(self, rows: Sequence[Sequence[float]]) -> list[list[float]]: ...


_TIME = operator.attrgetter("event_time")
_KEY = operator.attrgetter("key")


def batch_features(state: UserStateStore, txs: Iterable[Mapping[str, Any]]) -> list[tuple[float, ...]]:
    """Each transaction's feature vector, as if each were judged and recorded in turn (`state` unchanged).

    A user's events are decoded once per batch into a list, and each transaction is recorded into that
    list as `UserHistory.record` records it (placed by its key, as it reads back from the packed bytes,
    then cut to the horizon and the count): a property test holds the two to the same vectors."""
    held: dict[str, tuple[list[Event], set[str]]] = {}  # user -> (events by key, their ids)
    rows = []
    for tx in txs:
        user, event = str(tx["user_id"]), event_from(tx)
        found = held.get(user)
        if found is None:
            found = held[user] = (events := state.events_of(user)), {e.transaction_id for e in events}
        events, ids = found
        # the prior: earlier arrivals with an event time not after this one's, itself excluded by id
        upto = bisect.bisect_right(events, event.event_time, key=_TIME)
        tid = event.transaction_id
        prior = [e for e in events[:upto] if e.transaction_id != tid] if tid in ids else events[:upto]
        rows.append(features.compute(event, prior))
        if tid not in ids:  # placed by the key it came with, kept as it reads back from the packed bytes
            stored = as_stored(event)
            events.insert(bisect.bisect_right(events, event.key, key=_KEY), stored)
            ids.add(stored.transaction_id)
        cut = bisect.bisect_left(events, (events[-1].event_time - state.horizon, ""), key=_KEY)
        cut = max(cut, len(events) - state.max_events_per_user)
        if cut > 0:
            ids.difference_update(e.transaction_id for e in events[:cut])
            del events[:cut]
    return rows


def _yes(value: float, what: str) -> str:
    return f"{what} this user never used before" if value >= 1 else f"{what} this user used before"


def describe(name: str, vector: Sequence[float]) -> str:
    """One feature of `vector` in words, against the user's own history."""
    f = features.named(vector)
    value, missing = f[name], features.MISSING
    if name in ("amount", "log_amount", "amount_to_median"):
        ratio = f["amount_to_median"]
        if ratio == missing or ratio <= 0:
            return f"amount {fmt_amount(f['amount'])}, no earlier purchase of this user to compare with"
        return (f"amount {fmt_amount(f['amount'])} is {ratio:.1f}x this user's median of "
                f"{fmt_amount(round(f['amount'] / ratio, 2))}")
    if value == missing and name in ("km_from_last", "kmh_from_last", "minutes_since_last", "days_since_first_seen"):
        return f"{name}: no earlier transaction of this user (or its place unknown)"
    texts = {
        "prior_events": lambda: f"{value:.0f} earlier transactions in this user's history",
        "km_from_last": lambda: f"{value:,.0f} km from this user's previous place",
        "kmh_from_last": lambda: f"{value:,.0f} km/h from this user's previous place",
        "minutes_since_last": lambda: f"{value:,.1f} minutes after this user's previous transaction",
        "new_location": lambda: _yes(value, "a place"),
        "new_country": lambda: _yes(value, "a country"),
        "new_payment_method": lambda: _yes(value, "a payment method"),
        "checkouts_10m": lambda: f"{value:.0f} earlier checkouts of this user in the last 10 minutes",
        "checkouts_1h": lambda: f"{value:.0f} earlier checkouts of this user in the last hour",
        "declines_1h": lambda: f"{value:.0f} failed payments of this user in the last hour",
        "refunds_24h": lambda: f"{value:.0f} refunds of this user in the last 24 hours",
        "is_refund": lambda: "a refund" if value else "a purchase, not a refund",
        "is_failed": lambda: "a failed payment" if value else "a payment that went through",
        "hour_of_day": lambda: f"at {int(value):02d}:{int(value % 1 * 60):02d} UTC",
        "days_since_first_seen": lambda: f"this user first seen {value:,.1f} days before",
    }
    return texts[name]()


def top_factors(vector: Sequence[float], contributions: Sequence[float], n: int) -> tuple[Factor, ...]:
    """The `n` features that pushed the score up most (contributions in log-odds; the last is the
    bias), each said once: the three amount features share one sentence."""
    ranked = sorted(range(len(features.FEATURE_NAMES)), key=lambda i: (-contributions[i], i))
    out: list[Factor] = []
    said: set[str] = set()
    for i in ranked:
        if contributions[i] <= 0 or len(out) >= n:
            break
        name = features.FEATURE_NAMES[i]
        text = describe(name, vector)
        if text not in said:
            said.add(text)
            out.append(Factor(name, float(vector[i]), float(contributions[i]), text))
    return tuple(out)


def score_batch(detector: Detector, txs: Iterable[Mapping[str, Any]], scorer: Scorer) -> dict[str, ModelScore]:
    """transaction id -> its score, for the transactions of `txs` the detector will judge (a repeated
    id in the batch, or one its history holds already, is not judged again): ONE predict call for the
    batch, and one contributions call for the scores that reach the `model_score` signal's threshold
    when a typology weighs it."""
    todo, seen = [], set()
    for tx in txs:
        tid = str(tx["transaction_id"])
        if tid not in seen and detector.recorded(tx) is None:
            seen.add(tid)
            todo.append(tx)
    if not todo:
        return {}
    rows = batch_features(detector.state, todo)
    scores = scorer.score(rows)
    cfg = detector.ruleset.signals.model_score
    factors: dict[int, tuple[Factor, ...]] = {}
    if "model_score" in detector.ruleset.used_signals():
        hot = [i for i, s in enumerate(scores) if s >= cfg.threshold]
        if hot:
            shares = scorer.contributions([rows[i] for i in hot])
            factors = {i: top_factors(rows[i], c, cfg.top_features) for i, c in zip(hot, shares, strict=True)}
    return {str(tx["transaction_id"]): ModelScore(scorer.version, s, factors.get(i, ()))
            for i, (tx, s) in enumerate(zip(todo, scores, strict=True))}


def worth_scoring(detector: Detector, shadow: bool = False) -> bool:
    """Whether scoring can change a verdict (a typology of the loaded rules weighs `model_score`), or the
    scores are wanted anyway (`shadow`, MODEL_SHADOW_SCORING). Otherwise the stream skips the model: its
    features cost more than the rules themselves (docs/model.md, CPU)."""
    return shadow or "model_score" in detector.ruleset.used_signals()


def scores_of(detector: Detector, txs: Iterable[Mapping[str, Any]], model: Scorer | None) -> dict[str, ModelScore]:
    """`score_batch`, or nothing without a model; a model that fails to score leaves its signal absent
    for the batch (logged): the rules still judge it, as without a model."""
    if model is None:
        return {}
    try:
        return score_batch(detector, txs, model)
    except Exception:  # the design rule: nothing in one batch stops the processor
        log.exception("model %s could not score the batch: judged without it", model.version)
        return {}
