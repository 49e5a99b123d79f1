"""The risk model's features: one transaction against the user's history before it, as a fixed-order
vector of floats (`FEATURE_NAMES`).

The history is what the rules look at: `UserStateStore.prior(user, event)` (src/txnmon/core/rules/state.py),
the user's earlier arrivals kept within the rules' longest window and `max_events_per_user`. So the
backtest path, training (src/txnmon/core/risk_model.py) and, later, the stream compute the same
numbers from the same state. Pure: no clock (the event's own time is "now"), no I/O.

An unknown value (no earlier purchase, a place the gazetteer cannot find) is `MISSING` (-1), never NaN
or infinity: every value is finite, so any model library reads it, and a tree splits it apart.
Change a feature's meaning or order and FEATURE_VERSION must change: a model trained on the old
vector is then refused at load (src/txnmon/jobs/models.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import statistics
from collections.abc import Sequence

from txnmon.core import geo
from txnmon.core.rules.state import Event
from txnmon.core.rules.windows import within

FEATURE_VERSION = 1
MISSING = -1.0
# a trip in no time (two events in the same second, different cities) has no finite speed: capped here,
# faster than anything that flies, so "impossible" stays one clear value
MAX_SPEED_KMH = 50_000.0

FEATURE_NAMES: tuple[str, ...] = (
    "amount",
    "log_amount",
    "amount_to_median",       # amount / median of the user's earlier non-refund amounts (MISSING: none)
    "prior_events",           # how many earlier events the state holds
    "km_from_last",           # great-circle km from the previous event's city (MISSING: a city unknown)
    "kmh_from_last",          # that distance over the time between (capped at MAX_SPEED_KMH)
    "minutes_since_last",     # MISSING: no earlier event
    "new_location",           # 1: a place the history never had (0 without history)
    "new_country",            # 1: a country the history never had (0 without a known earlier country)
    "new_payment_method",     # 1: a method the history never had (0 without a known earlier method)
    "checkouts_10m",          # earlier non-refund events in the last 10 minutes
    "checkouts_1h",
    "declines_1h",            # earlier failed payments in the last hour
    "refunds_24h",            # earlier refunds in the last 24 hours
    "is_refund",
    "is_failed",
    "hour_of_day",            # UTC hour of the event time, fractional
    "days_since_first_seen",  # since the oldest event the state holds (bounded by its window); MISSING: none
)

_TEN_MINUTES = dt.timedelta(minutes=10)
_HOUR = dt.timedelta(hours=1)
_DAY = dt.timedelta(days=1)
LIMIT = 1e12  # amounts and ratios are clamped to +-LIMIT: finite, whatever a hand-built event holds


def _is_checkout(e: Event) -> bool:
    return e.type != "refund"


def travel(there: str, here: str, seconds: float) -> tuple[float, float]:
    """(km, km/h) from the last event's city `there`, `seconds` before; MISSING for both when either city is
    unknown."""
    km = km_between(there, here)
    if km is None:
        return MISSING, MISSING
    hours = max(seconds, 0.0) / 3600
    if km == 0.0:
        return 0.0, 0.0
    return km, min(km / hours, MAX_SPEED_KMH) if hours > 0 else MAX_SPEED_KMH


@functools.lru_cache(maxsize=65_536)
def km_between(there: str, here: str) -> float | None:
    """Great-circle km between two places (None: either unknown); few pairs recur, so computed once."""
    a, b = geo.lookup(here), geo.lookup(there)
    return None if a is None or b is None else geo.distance_km(b, a)


def _new_country(event: Event, places: set[str]) -> float:
    country = geo.country_of(event.location)
    used = {c for place in places if (c := geo.country_of(place)) is not None}
    return float(country is not None and bool(used) and country not in used)


def _new_method(event: Event, prior: Sequence[Event]) -> float:
    used = {e.payment_method for e in prior if e.payment_method}
    return float(bool(event.payment_method) and bool(used) and event.payment_method not in used)


def compute(event: Event, prior: Sequence[Event]) -> tuple[float, ...]:
    """The feature vector of `event` given `prior` (the user's earlier events, sorted by event time as
    the state keeps them), in FEATURE_NAMES order; every value finite."""
    now = event.event_time
    utc = now.astimezone(dt.UTC) if now.tzinfo is not None else now
    # the contract keeps amounts finite; a hand-built event might not be: clamped, not NaN
    amount = min(max(event.amount, -LIMIT), LIMIT) if math.isfinite(event.amount) else 0.0
    # (the checkout test inlined: this line runs over the whole history of every scored transaction)
    usual = [e.amount for e in prior if e.type != "refund" and math.isfinite(e.amount)]
    # median_low is one of the amounts: two huge ones never average to infinity
    median = statistics.median_low(usual) if usual else 0.0
    to_median = amount / median if median > 0 else MISSING
    if prior:
        last = prior[-1]
        km, kmh = travel(last.location, event.location, (now - last.event_time).total_seconds())
        since_last = max((now - last.event_time).total_seconds(), 0.0) / 60
        first_seen = max((now - prior[0].event_time).total_seconds(), 0.0) / 86_400
    else:
        km = kmh = since_last = first_seen = MISSING
    places = {e.location for e in prior}  # a user has few places: each looked up once
    here = event.location.casefold()
    recent_hour = within(prior, now - _HOUR)
    vector: tuple[float, ...] = (
        amount,
        math.log1p(max(amount, 0.0)),
        min(max(to_median, -LIMIT), LIMIT),
        float(len(prior)),
        km,
        kmh,
        since_last,
        float(bool(places) and all(p.casefold() != here for p in places)),
        _new_country(event, places),
        _new_method(event, prior),
        float(sum(1 for e in recent_hour if _is_checkout(e) and e.event_time >= now - _TEN_MINUTES)),
        float(sum(1 for e in recent_hour if _is_checkout(e))),
        float(sum(1 for e in recent_hour if e.status == "failed")),
        float(sum(1 for e in within(prior, now - _DAY) if e.type == "refund")),
        float(event.type == "refund"),
        float(event.status == "failed"),
        utc.hour + utc.minute / 60,
        first_seen,
    )
    return vector


def named(vector: Sequence[float]) -> dict[str, float]:
    """A vector as {name: value}, for explanations and `txnmon models show`."""
    return dict(zip(FEATURE_NAMES, vector, strict=True))
