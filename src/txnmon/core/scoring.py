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
import datetime as dt
import functools
import logging
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from txnmon.core import features
from txnmon.core.feature_timeline import Timeline, TimelineCache
from txnmon.core.rules import Detector
from txnmon.core.rules.history import micros
from txnmon.core.rules.model_signal import Factor, ModelScore
from txnmon.core.rules.packed import as_stored
from txnmon.core.rules.state import Event, UserStateStore, event_from
from txnmon.core.rules.windows import fmt_amount

__all__ = ["Factor", "ModelScore", "Scorer", "batch_features", "describe", "score_batch", "scores_of", "top_factors",
           "worth_scoring"]
log = logging.getLogger("txnmon.stream")
_UTC = dt.UTC
_MICROSECOND = dt.timedelta(microseconds=1)


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

    Each user's events are read as a `Timeline` (src/txnmon/core/feature_timeline.py): kept from the user's
    last batch while it is still their history (the state's cache, `_timelines`), else built from their
    decoded events. Each transaction is recorded into it as `UserHistory.record` records it (as it reads back
    from the packed bytes, then cut to the horizon and the count). The usual transaction, newer than all its
    user's events, is featurised from the timeline's kept counts; any other (late, or an id held) by
    `features.compute` over the events, as before. Property tests hold both to the vectors training computes."""
    by_user: dict[str, list[tuple[int, Event]]] = {}
    n = 0
    for n, tx in enumerate(txs, 1):
        by_user.setdefault(str(tx["user_id"]), []).append((n - 1, event_from(tx)))
    rows: list[tuple[float, ...]] = [()] * n
    horizon, most = state.horizon, state.max_events_per_user
    horizon_us = horizon // _MICROSECOND
    cache = _timelines(state)
    for user, arrivals in by_user.items():
        blob = state.packed(user)[0] if user in state else b""
        line = cache.usable(user, blob)
        if line is None:
            events = state.events_of(user)
            line = Timeline(events, blob)
        for i, event in arrivals:
            at_us = micros(event.event_time)
            if line.newest_before(event, at_us):
                rows[i] = line.vector(event, at_us)
                line.append(_stored(event), at_us, horizon_us, most)
            else:
                kept = line.kept(state.events_of(user) if line.base else [])
                rows[i], events = _late(kept, {e.transaction_id for e in kept}, event, horizon, most)
                # no packed value is these events: this timeline holds them itself, and is not kept
                line = Timeline(events, None)
        if line.base is not None:
            cache.keep(user, line)  # counted again with this batch's events
        else:
            cache.forget(user)
    return rows


def _timelines(state: UserStateStore) -> TimelineCache:
    """The state's timelines, kept in step with its records (`UserStateStore.follower`)."""
    if state.follower is None:
        state.follower = TimelineCache()
    if not isinstance(state.follower, TimelineCache):  # one follower a state: never replaced unseen
        raise TypeError(f"the state is followed by {type(state.follower).__name__}, not timelines: cannot score")
    return state.follower


def _stored(event: Event) -> Event:
    """`as_stored(event)`, without the pack and unpack for what they give back unchanged: ASCII texts
    (never cut) and a UTC time."""
    when = event.event_time
    if (type(when) is dt.datetime and when.tzinfo is _UTC and event.transaction_id.isascii()
            and event.location.isascii() and event.type.isascii() and event.status.isascii()
            and event.payment_method.isascii()
            and len(event.transaction_id) + len(event.location) + len(event.payment_method) < 0xFFFF
            and len(event.type) + len(event.status) < 0xFFFF):
        return event
    return as_stored(event)


def _late(events: list[Event], ids: set[str], event: Event, horizon: dt.timedelta,
          most: int) -> tuple[tuple[float, ...], list[Event]]:
    """The slow path of `batch_features` (an event not newer than all its user's, or an id held): its
    vector from the prior rescanned, and the user's events after it is recorded and the state's cuts."""
    # the prior: earlier arrivals with an event time not after this one's, itself excluded by id
    upto = bisect.bisect_right(events, event.event_time, key=_TIME)
    tid = event.transaction_id
    prior = [e for e in events[:upto] if e.transaction_id != tid] if tid in ids else events[:upto]
    row = features.compute(event, prior)
    if tid not in ids:  # placed by the key it came with, kept as it reads back from the packed bytes
        events.insert(bisect.bisect_right(events, event.key, key=_KEY), as_stored(event))
    cut = bisect.bisect_left(events, (events[-1].event_time - horizon, ""), key=_KEY)
    cut = max(cut, len(events) - most)
    return row, events[max(cut, 0):]


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
    batch. A score that reaches the `model_score` signal's threshold, when a typology weighs it, can be
    explained: its contributions are computed for it alone if a typology fires with it (`ModelScore.explain`;
    a row's contributions are independent of the others in the call, so the factors are the same)."""
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
    version = scorer.version
    if "model_score" not in detector.ruleset.used_signals():
        return {str(tx["transaction_id"]): ModelScore(version, s) for tx, s in zip(todo, scores, strict=True)}
    return {str(tx["transaction_id"]): ModelScore(version, s, explain=None if s < cfg.threshold else
                                                  functools.partial(_explain, scorer, rows[i], cfg.top_features))
            for i, (tx, s) in enumerate(zip(todo, scores, strict=True))}


def _explain(scorer: Scorer, row: tuple[float, ...], n: int) -> tuple[Factor, ...]:
    """The top `n` factors of one row, when a typology fired with its score (`ModelScore.explained`). A model
    that cannot explain leaves the alert without factors (logged, with the traceback once per version): the
    verdict stands, as it was judged."""
    try:
        (shares,) = scorer.contributions([row])
        return top_factors(row, shares, n)
    except Exception:  # the design rule: nothing in one transaction stops the processor
        if scorer.version in _UNEXPLAINED:
            log.warning("model %s could not explain a score: the alert names no factors", scorer.version)
        else:
            _UNEXPLAINED.add(scorer.version)
            log.exception("model %s could not explain a score: the alert names no factors", scorer.version)
        return ()


# versions whose failure to explain was logged with its traceback (a model that never explains would
# otherwise log one per alert)
_UNEXPLAINED: set[str] = set()


def worth_scoring(detector: Detector, shadow: bool = False) -> bool:
    """Whether scoring can change a verdict (a typology of the loaded rules weighs `model_score`), or the
    scores are wanted anyway (`shadow`, MODEL_SHADOW_SCORING). Otherwise the stream skips the model: its
    features cost more than the rules themselves (docs/model.md, CPU)."""
    return shadow or "model_score" in detector.ruleset.used_signals()


def scores_of(detector: Detector, txs: Iterable[Mapping[str, Any]],
              model: Scorer | None) -> dict[str, ModelScore] | None:
    """`score_batch`, or nothing without a model; None when the model failed to score (logged): its signal is
    then absent for the batch and the rules judge it as without a model. ({} is "nothing new to score": a
    batch of re-sends is still judged with the model in use, src/txnmon/core/backtest.py.)"""
    if model is None:
        return {}
    try:
        return score_batch(detector, txs, model)
    except Exception:  # the design rule: nothing in one batch stops the processor
        log.exception("model %s could not score the batch: judged without it", model.version)
        return None
