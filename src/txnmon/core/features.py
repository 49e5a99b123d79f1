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

import bisect
import datetime as dt
import functools
import math
import statistics
from collections.abc import Sequence
from itertools import accumulate

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
_LIMIT = 1e12


def _is_checkout(e: Event) -> bool:
    return e.type != "refund"


def _travel(last: Event, event: Event) -> tuple[float, float]:
    """(km, km/h) from the last event's city, MISSING for both when either city is unknown."""
    km = _km(last.location, event.location)
    if km is None:
        return MISSING, MISSING
    hours = max((event.event_time - last.event_time).total_seconds(), 0.0) / 3600
    if km == 0.0:
        return 0.0, 0.0
    return km, min(km / hours, MAX_SPEED_KMH) if hours > 0 else MAX_SPEED_KMH


@functools.lru_cache(maxsize=65_536)
def _km(there: str, here: str) -> float | None:
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
    amount = min(max(event.amount, -_LIMIT), _LIMIT) if math.isfinite(event.amount) else 0.0
    # (the checkout test inlined: this line runs over the whole history of every scored transaction)
    usual = [e.amount for e in prior if e.type != "refund" and math.isfinite(e.amount)]
    # median_low is one of the amounts: two huge ones never average to infinity
    median = statistics.median_low(usual) if usual else 0.0
    to_median = amount / median if median > 0 else MISSING
    if prior:
        last = prior[-1]
        km, kmh = _travel(last, event)
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
        min(max(to_median, -_LIMIT), _LIMIT),
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


class Timeline:
    """One user's events while a batch is scored: the held history, then each scored transaction after
    it, with what `compute` would scan kept up to date instead (src/txnmon/core/scoring.py).

    Only for the usual arrival, a transaction newer (by key) than every event held: its prior is then
    all the events from `lo` (the state's cuts only ever drop the oldest), so the windowed counts are
    prefix sums read by bisection, the median a sorted list kept as the window slides, and the places,
    countries and methods counted. `vector` gives what `compute(event, events[lo:])` gives, bit for bit
    (a property test holds them to it); anything else is the caller's slow path."""

    __slots__ = ("_checkouts", "_countries", "_failed", "_methods", "_places", "_refunds", "_usual",
                 "events", "ids", "lo", "times")

    def __init__(self, events: list[Event]) -> None:
        # built by comprehensions, not one loop: most users are met once or twice a batch
        self.events = events
        self.times = [e.event_time for e in events]
        self.ids = {e.transaction_id for e in events}
        self.lo = 0
        # prefix counts: [i] is the count among events[:i]
        self._refunds = [0, *accumulate([e.type == "refund" for e in events])]
        self._checkouts = [i - r for i, r in enumerate(self._refunds)]
        self._failed = [0, *accumulate([e.status == "failed" for e in events])]
        # -inf < a < inf: isfinite's test inlined (NaN compares false)
        self._usual = sorted([e.amount for e in events if e.type != "refund" and -math.inf < e.amount < math.inf])
        places = [e.location for e in events]
        methods = [e.payment_method for e in events]
        self._places: dict[str, int] = {}
        self._countries: dict[str, int] = {}
        for place in set(places):  # a user has few places and methods: each counted in C
            self._add_place(place, places.count(place))
        self._methods = {m: methods.count(m) for m in set(methods) if m}

    def _add_place(self, place: str, n: int) -> None:
        folded = _fold(place)
        self._places[folded] = self._places.get(folded, 0) + n
        country = geo.country_of(place)
        if country is not None:
            self._countries[country] = self._countries.get(country, 0) + n

    def newest_before(self, event: Event) -> bool:
        """Whether `event` is new and after every held event by key: the case `vector` answers."""
        return event.transaction_id not in self.ids and (not self.times or self.events[-1].key < event.key)

    def vector(self, event: Event) -> tuple[float, ...]:
        """`compute(event, self.events[self.lo:])`, without scanning them."""
        lo, n, times = self.lo, len(self.events), self.times
        now = event.event_time
        utc = now.astimezone(dt.UTC) if now.tzinfo is not None else now
        amount = min(max(event.amount, -_LIMIT), _LIMIT) if math.isfinite(event.amount) else 0.0
        usual = self._usual
        median = usual[(len(usual) - 1) // 2] if usual else 0.0  # statistics.median_low
        to_median = amount / median if median > 0 else MISSING
        if n > lo:
            last = self.events[-1]
            km, kmh = _travel(last, event)
            since_last = max((now - last.event_time).total_seconds(), 0.0) / 60
            first_seen = max((now - times[lo]).total_seconds(), 0.0) / 86_400
            country = geo.country_of(event.location)
            new_country = float(country is not None and bool(self._countries) and country not in self._countries)
            method = event.payment_method
            new_method = float(bool(method) and bool(self._methods) and method not in self._methods)
            new_place = float(_fold(event.location) not in self._places)
        else:
            km = kmh = since_last = first_seen = MISSING
            new_country = new_method = new_place = 0.0
        # the windows are suffixes of the prior (it is sorted by time): counts by prefix sums
        hour = bisect.bisect_left(times, now - _HOUR, lo, n)
        minutes = bisect.bisect_left(times, now - _TEN_MINUTES, hour, n)
        day = bisect.bisect_left(times, now - _DAY, lo, n)
        checkouts = self._checkouts
        return (
            amount,
            math.log1p(max(amount, 0.0)),
            min(max(to_median, -_LIMIT), _LIMIT),
            float(n - lo),
            km,
            kmh,
            since_last,
            new_place,
            new_country,
            new_method,
            float(checkouts[n] - checkouts[minutes]),
            float(checkouts[n] - checkouts[hour]),
            float(self._failed[n] - self._failed[hour]),
            float(self._refunds[n] - self._refunds[day]),
            float(event.type == "refund"),
            float(event.status == "failed"),
            utc.hour + utc.minute / 60,
            first_seen,
        )

    def append(self, stored: Event, horizon: dt.timedelta, max_events: int) -> None:
        """Record `stored` (newest by key; as it reads back from the packed bytes) and cut the oldest as
        the state does: before the newest's time minus `horizon`, and beyond `max_events`."""
        self.events.append(stored)
        self.times.append(stored.event_time)
        self.ids.add(stored.transaction_id)
        checkout = stored.type != "refund"
        self._checkouts.append(self._checkouts[-1] + checkout)
        self._failed.append(self._failed[-1] + (stored.status == "failed"))
        self._refunds.append(self._refunds[-1] + (not checkout))
        if checkout and math.isfinite(stored.amount):
            bisect.insort(self._usual, stored.amount)
        self._add_place(stored.location, 1)
        if stored.payment_method:
            self._methods[stored.payment_method] = self._methods.get(stored.payment_method, 0) + 1
        n = len(self.events)
        cut = max(bisect.bisect_left(self.times, stored.event_time - horizon, self.lo, n), n - max_events)
        for e in self.events[self.lo:cut]:
            self._drop(e)
        self.lo = max(self.lo, cut)

    def _drop(self, e: Event) -> None:
        """Take a cut event out of the kept window's sorted amounts and counts."""
        self.ids.discard(e.transaction_id)
        if e.type != "refund" and math.isfinite(e.amount):
            del self._usual[bisect.bisect_left(self._usual, e.amount)]
        _less(self._places, _fold(e.location))
        country = geo.country_of(e.location)
        if country is not None:
            _less(self._countries, country)
        if e.payment_method:
            _less(self._methods, e.payment_method)

    def kept(self) -> list[Event]:
        """The events the state would hold now (after the cuts)."""
        return self.events[self.lo:]


def _less(counts: dict[str, int], key: str) -> None:
    left = counts[key] - 1
    if left > 0:
        counts[key] = left
    else:
        del counts[key]


@functools.lru_cache(maxsize=65_536)
def _fold(place: str) -> str:
    return place.casefold()
