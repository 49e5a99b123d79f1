"""The risk model's features for the stream's usual transaction, kept per user from one batch to the next.

`features.compute` reads a transaction's whole prior: the median of every earlier amount, every place and
payment method, the windows' counts. Doing that per transaction, or even decoding each batch user's kept
history once per batch, made the model cost more than the rules (issue 32, docs/model.md). A `Timeline`
keeps what `compute` would scan as running aggregates (prefix counts read by bisection, a sorted list for
the median, counted places, countries and methods), and a `TimelineCache` keeps a user's timeline for
their next batch, so a user seen again costs no decoding at all.

Exactness: a timeline gives what `compute(event, kept)` gives, bit for bit (property tests hold both to it),
and is only reused while it is the user's history. It names the packed value it equals (`base`), and
follows the state's records (`TimelineCache.recorded`, called by `UserStateStore.record`): each event it
was handed must be recorded next, in order, leaving the count it expects, and the packed value it then
equals is the one the state holds. Any other change (a restore, a withdrawal, a record it was not handed,
an event it does not expect) makes a new packed value, so the next batch finds the timeline stale and
builds it again from the state. Pure: no clock, no I/O.
"""

from __future__ import annotations

import bisect
import functools
import math
import sys
from collections import deque
from collections.abc import Sequence
from itertools import accumulate

from txnmon.core import geo
from txnmon.core.features import LIMIT, MISSING, travel
from txnmon.core.rules.history import micros
from txnmon.core.rules.packed import texts_start
from txnmon.core.rules.state import Event, count_of

_US = 1_000_000
_TEN_MINUTES_US = 600 * _US
_HOUR_US = 3_600 * _US
_DAY_US = 86_400 * _US
_MINUTE_US = 60 * _US
_INF = math.inf
# The events that timelines kept between batches may hold in all, the least recently used let go first. An
# event costs about 100-150 bytes here and a timeline about 2.8 KB of its own (measured with tracemalloc: 5.7
# KB for a user's 40 events, 20 KB for 200), so this is about 60-70 MB whatever the history lengths.
MAX_TIMELINE_EVENTS = 400_000
# a timeline's own objects (its lists, sets and dicts: about 2.8 KB) counted as this many events
_OVERHEAD_EVENTS = 20
# the cut-off events at the front are let go once this many (and as many as are kept) have piled up
_COMPACT_AFTER = 32


class Timeline:
    """One user's kept events as the aggregates `compute` needs, for arrivals newer than all of them.

    Only for the usual arrival, a transaction newer (by time) than every event held whose id the history does
    not hold: its prior is then all the events from `lo` (the state's cuts only ever drop the oldest).
    Anything else is the caller's slow path (`features.compute` over the events)."""

    __slots__ = ("_countries", "_failed", "_methods", "_places", "_refunds", "_usual", "added", "added_ids",
                 "amounts", "base", "lo", "methods", "pending", "places", "times")

    def __init__(self, events: Sequence[Event], base: bytes | None) -> None:
        """`base`: the packed history these events are (the state's, when the timeline may be kept for the
        user's next batch), None for a list of events that is no packed value (then their ids are held here
        instead of searched for in it)."""
        intern = sys.intern  # a user has few places and methods: one string each, not one per event
        self.times = [micros(e.event_time) for e in events]  # µs since the epoch
        self.amounts = [e.amount for e in events]
        self.places = [intern(e.location) for e in events]
        self.methods = [intern(e.payment_method) for e in events]
        # prefix counts: [i] is the count among the first i events
        self._refunds = [0, *accumulate([e.type == "refund" for e in events])]
        self._failed = [0, *accumulate([e.status == "failed" for e in events])]
        # -inf < a < inf: isfinite's test inlined (NaN compares false)
        self._usual = sorted([e.amount for e in events if e.type != "refund" and -_INF < e.amount < _INF])
        self._places: dict[str, int] = {}
        self._countries: dict[str, int] = {}
        for place in set(self.places):  # counted in C
            self._add_place(place, self.places.count(place))
        self._methods = {m: self.methods.count(m) for m in set(self.methods) if m}
        self.lo = 0
        self.base = base
        # appended in this batch, as they read back from the packed bytes (without a base: every event)
        self.added: list[Event] = [] if base is not None else list(events)
        self.added_ids = set() if base is not None else {e.transaction_id for e in events}
        # what the state must record next for this timeline to stay its history: (event, events kept after it)
        self.pending: deque[tuple[Event, int]] = deque()

    def _add_place(self, place: str, n: int) -> None:
        folded = _fold(place)
        self._places[folded] = self._places.get(folded, 0) + n
        country = _country(place)
        if country is not None:
            self._countries[country] = self._countries.get(country, 0) + n

    def begin(self) -> None:
        """Start a batch with this timeline (the state's history unchanged since it was last kept): nothing
        added yet, and the events cut in earlier batches let go once enough have piled up."""
        self.added, self.added_ids = [], set()
        lo = self.lo
        if lo >= _COMPACT_AFTER and lo * 2 >= len(self.times):
            refunds, failed = self._refunds, self._failed
            self.times, self.amounts = self.times[lo:], self.amounts[lo:]
            self.places, self.methods = self.places[lo:], self.methods[lo:]
            self._refunds = [r - refunds[lo] for r in refunds[lo:]]
            self._failed = [f - failed[lo] for f in failed[lo:]]
            self.lo = 0

    def newest_before(self, event: Event, at_us: int) -> bool:
        """Whether `event` (at `at_us`) is the case `vector` answers: an id the history does not hold (a byte
        search of the packed history, as `UserStateStore.recorded` does: a false match only takes the slow
        path), after every event held."""
        tid = event.transaction_id
        if tid in self.added_ids:
            return False
        base = self.base
        if base:  # the texts only: an id's bytes found among the times and amounts would cost a slow path
            try:
                if base.find(tid.encode("utf-8"), texts_start(base)) >= 0:
                    return False
            except UnicodeEncodeError:
                return False  # a lone surrogate: the slow path decides
        return not self.times or self.times[-1] < at_us

    def vector(self, event: Event, at_us: int) -> tuple[float, ...]:
        """`features.compute(event, kept events)`, without scanning them; `at_us`: the event's time in µs."""
        lo, n, times = self.lo, len(self.times), self.times
        amount = min(max(event.amount, -LIMIT), LIMIT) if -_INF < event.amount < _INF else 0.0
        usual = self._usual
        median = usual[(len(usual) - 1) // 2] if usual else 0.0  # statistics.median_low
        to_median = amount / median if median > 0 else MISSING
        if n > lo:
            last_us = times[-1]
            # (a difference of whole µs over 10**6: what timedelta.total_seconds gives, to the bit)
            km, kmh = travel(self.places[-1], event.location, (at_us - last_us) / _US)
            since_last = max((at_us - last_us) / _US, 0.0) / 60
            first_seen = max((at_us - times[lo]) / _US, 0.0) / 86_400
            country = _country(event.location)
            new_country = float(country is not None and bool(self._countries) and country not in self._countries)
            method = event.payment_method
            new_method = float(bool(method) and bool(self._methods) and method not in self._methods)
            new_place = float(_fold(event.location) not in self._places)
        else:
            km = kmh = since_last = first_seen = MISSING
            new_country = new_method = new_place = 0.0
        # the windows are suffixes of the kept events (sorted by time): counts by prefix sums
        hour = bisect.bisect_left(times, at_us - _HOUR_US, lo, n)
        minutes = bisect.bisect_left(times, at_us - _TEN_MINUTES_US, hour, n)
        day = bisect.bisect_left(times, at_us - _DAY_US, lo, n)
        refunds, failed = self._refunds, self._failed
        return (
            amount,
            math.log1p(max(amount, 0.0)),
            min(max(to_median, -LIMIT), LIMIT),
            float(n - lo),
            km,
            kmh,
            since_last,
            new_place,
            new_country,
            new_method,
            float((n - minutes) - (refunds[n] - refunds[minutes])),  # checkouts: the events less the refunds
            float((n - hour) - (refunds[n] - refunds[hour])),
            float(failed[n] - failed[hour]),
            float(refunds[n] - refunds[day]),
            float(event.type == "refund"),
            float(event.status == "failed"),
            # the UTC hour and minute of a time in µs since the epoch: what astimezone(UTC) gives
            at_us // _HOUR_US % 24 + at_us // _MINUTE_US % 60 / 60,
            first_seen,
        )

    def append(self, stored: Event, at_us: int, horizon_us: int, max_events: int) -> None:
        """Record `stored` (newest; as it reads back from the packed bytes; at `at_us`) and cut the oldest as the
        state does: before its time minus `horizon_us`, and beyond `max_events`."""
        refund = stored.type == "refund"
        self.times.append(at_us)
        self.amounts.append(stored.amount)
        self.places.append(sys.intern(stored.location))
        self.methods.append(sys.intern(stored.payment_method))
        self._refunds.append(self._refunds[-1] + refund)
        self._failed.append(self._failed[-1] + (stored.status == "failed"))
        if not refund and -_INF < stored.amount < _INF:
            bisect.insort(self._usual, stored.amount)
        self._add_place(stored.location, 1)
        if stored.payment_method:
            self._methods[stored.payment_method] = self._methods.get(stored.payment_method, 0) + 1
        self.added.append(stored)
        self.added_ids.add(stored.transaction_id)
        n = len(self.times)
        cut = max(bisect.bisect_left(self.times, at_us - horizon_us, self.lo, n), n - max_events)
        for i in range(self.lo, cut):
            self._drop(i)
        self.lo = max(self.lo, cut)
        self.pending.append((stored, n - self.lo))

    def _drop(self, i: int) -> None:
        """Take cut event i out of the kept median's amounts and the counts."""
        amount = self.amounts[i]
        if self._refunds[i + 1] == self._refunds[i] and -_INF < amount < _INF:
            del self._usual[bisect.bisect_left(self._usual, amount)]
        place = self.places[i]
        _less(self._places, _fold(place))
        country = _country(place)
        if country is not None:
            _less(self._countries, country)
        if self.methods[i]:
            _less(self._methods, self.methods[i])

    def kept(self, base_events: list[Event]) -> list[Event]:
        """The events the state would hold now, given the events of `base` (the packed history the batch began
        with; ignored for a timeline of a plain list, which holds its events in `added`)."""
        n = len(self.times) - self.lo
        if not n:
            return []
        return (base_events + self.added)[-n:] if self.base is not None else self.added[-n:]


class TimelineCache:
    """Users' timelines from one batch to the next (see the module's docstring); the state calls `recorded`.
    Bounded by the events they hold (`limit`), the least recently used let go first."""

    def __init__(self, limit: int = MAX_TIMELINE_EVENTS) -> None:
        self.limit = limit
        self._lines: dict[str, Timeline] = {}  # least recently used first
        self._sizes: dict[str, int] = {}  # events each held when last kept or reused
        self.events = 0  # their sum: what the bound is checked against

    def __len__(self) -> int:
        return len(self._lines)

    def usable(self, user: str, blob: bytes) -> Timeline | None:
        """The user's kept timeline if it is their packed history `blob` (and all it was handed is recorded)."""
        line = self._lines.get(user)
        if line is None or line.base is None or line.base is not blob or line.pending:
            return None
        line.begin()
        self.keep(user, line)  # the most recently used now, its size counted again
        return line

    def keep(self, user: str, line: Timeline) -> None:
        """Keep (or count again, after a batch's appends) the user's timeline, the most recently used now."""
        self.forget(user)
        self._lines[user] = line
        self._sizes[user] = size = len(line.times) + _OVERHEAD_EVENTS
        self.events += size
        while self.events > self.limit and len(self._lines) > 1:
            self.forget(next(iter(self._lines)))

    def forget(self, user: str) -> None:
        if self._lines.pop(user, None) is not None:
            self.events -= self._sizes.pop(user)

    def clear(self) -> None:
        self._lines.clear()
        self._sizes.clear()
        self.events = 0

    def recorded(self, user: str, before: bytes, after: bytes, event: Event) -> None:
        """The state recorded `event` for `user`, its packed history going from `before` to `after`: a timeline
        that expected exactly this now equals `after`; any other is dropped."""
        line = self._lines.get(user)
        if line is None:
            return
        if line.base is before and line.pending:
            expected, count = line.pending[0]
            if (expected is event or expected == event) and count_of(after) == count:
                line.pending.popleft()
                line.base = after
                if not line.pending:  # `after` holds them now
                    line.added, line.added_ids = [], set()
                return
        self.forget(user)


def _less(counts: dict[str, int], key: str) -> None:
    left = counts[key] - 1
    if left > 0:
        counts[key] = left
    else:
        del counts[key]


@functools.lru_cache(maxsize=65_536)
def _fold(place: str) -> str:
    return place.casefold()


# a place's country, remembered: a user's few places are looked up once, not per transaction
_country = functools.lru_cache(maxsize=65_536)(geo.country_of)
