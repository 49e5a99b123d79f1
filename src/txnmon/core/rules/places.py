"""The place signals: a new place, a new country, a trip faster than a plane, far from every usual
place. Places are resolved by the gazetteer (src/txnmon/core/geo.py); what it cannot place tells
nothing, except that a change of place within minutes is suspect.

`fast_travel` is built so that a late arrival cannot change the verdict (src/txnmon/core/rules/late_pairs.py):
it fires when ANY earlier transaction within its window is too far for the time between (adding an
event can only add such a pair), and the one thing that silences it, a return to a place used
before the move away, is looked up only among events older than the lateness bound, which have
all arrived by the time anything after them is judged.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple

from txnmon.core import geo
from txnmon.core.rules.history import located_only_at
from txnmon.core.rules.rulebook import FarFromUsualSignal, FastTravelSignal, NewCountrySignal, NewLocationSignal
from txnmon.core.rules.state import Event
from txnmon.core.rules.windows import MAX_LISTED, Evidence, derived, fmt_span, unshared, within


# what the place signals work out from a window of the user's history, once per transaction (`derived`)
def places_of(history: list[Event]) -> frozenset[str]:
    """The places of a window, casefolded (the rule `unusual_location` asks the same)."""
    return frozenset(e.location.casefold() for e in history)


def _countries(history: list[Event]) -> tuple[list[Event], set[str | None]]:
    """The window's events in a country the gazetteer can tell, and those countries."""
    placed = [e for e in history if geo.country_of(e.location) is not None]
    return placed, {geo.country_of(e.location) for e in placed}


def _place_names(history: list[Event]) -> dict[str, str]:
    return {e.location.casefold(): e.location for e in history}


def new_location_signal(event: Event, prior: Sequence[Event], cfg: NewLocationSignal) -> Evidence | None:
    since = event.event_time - cfg.lookback
    history = within(prior, since)
    if len(history) < cfg.min_history:
        return None
    if event.location.casefold() in derived(prior, "places", since, places_of):
        return None
    usual = sorted({e.location for e in history})[:MAX_LISTED]
    return Evidence(f"first transaction from {event.location} in {fmt_span(cfg.lookback)} "
                    f"(usual: {', '.join(usual[:3])})", tuple(history),
                    {"location": event.location, "usual": usual})


def new_country_signal(event: Event, prior: Sequence[Event], cfg: NewCountrySignal) -> Evidence | None:
    country = geo.country_of(event.location)
    if country is None:
        return None
    history, used = derived(prior, "countries", event.event_time - cfg.lookback, _countries)
    if len(history) < cfg.min_history:
        return None
    if country in used:
        return None
    listed = sorted(c for c in used if c)[:MAX_LISTED]
    return Evidence(f"first transaction from {country} in {fmt_span(cfg.lookback)} (used: {', '.join(listed[:3])})",
                    tuple(history), {"country": country, "used": listed})


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


class Trip(NamedTuple):
    km: float        # the distance, or a lower bound of it (`exact` False: two countries, a place not found)
    speed_kmh: float
    exact: bool


def trip(last: Event, event: Event, gap: dt.timedelta) -> Trip | None:
    """How far apart two events' places are, and how fast the user would have gone: between cities
    the gazetteer knows, exactly; else, between two countries it can tell, at least the distance
    between those countries; else None."""
    found = travel_speed(last, event, gap)
    if found is not None:
        return Trip(*found, exact=True)
    a, b = geo.country_of(last.location), geo.country_of(event.location)
    if a is None or b is None or a == b:
        return None
    km = geo.min_country_distance_km(a, b)
    if km <= 0:
        return None
    hours = gap.total_seconds() / 3600
    return Trip(km, km / hours if hours > 0 else float("inf"), exact=False)


def _returned(here_times: list[dt.datetime], event: Event, away: Event, cfg: FastTravelSignal) -> bool:
    """Is `event` a return to a place used before the move to `away`? `here_times` are the times of
    the user's earlier events at `event`'s place, oldest first. Only events older than the lateness
    bound are asked: a later arrival could not have been seen yet."""
    assert cfg.usual_lookback is not None
    settled = min(away.event_time, event.event_time - cfg.lateness)
    i = bisect.bisect_left(here_times, event.event_time - cfg.usual_lookback)
    return i < len(here_times) and here_times[i] < settled


def fast_travel_signal(event: Event, prior: Sequence[Event], cfg: FastTravelSignal) -> Evidence | None:
    since = event.event_time - cfg.window
    if located_only_at(unshared(prior), since, event.location):
        return None  # the usual case: no other place within the window, read without decoding a thing
    here = event.location.casefold()
    here_times: list[dt.datetime] | None = None  # built once, on the first too-fast move
    for last in within(prior, since):  # newest first (prior is in event-time order)
        if last.location == event.location or last.location.casefold() == here:
            continue
        gap = event.event_time - last.event_time
        found = trip(last, event, gap)
        if found is None:
            # places the gazetteer cannot tell apart by distance: only a change of place this fast is suspect
            if gap > cfg.unknown_city_window:
                continue
        elif found.speed_kmh <= cfg.max_speed_kmh:
            continue  # a plausible trip: not suspicious by itself
        if cfg.usual_lookback is not None:
            if here_times is None:
                # only times within the lookback are asked (`_returned`): the older history is not read
                here_times = [e.event_time for e in reversed(within(prior, event.event_time - cfg.usual_lookback))
                              if e.location.casefold() == here]
            if _returned(here_times, event, last, cfg):
                continue  # the move away (its own verdict) was what was odd, not the way back
        return _travel_evidence(last, event, gap, found, cfg)
    return None


def _travel_evidence(last: Event, event: Event, gap: dt.timedelta, found: Trip | None,
                     cfg: FastTravelSignal) -> Evidence:
    measured: dict[str, Any] = {"previous_location": last.location, "location": event.location,
                                "gap_s": gap.total_seconds(), "distance_km": None, "speed_kmh": None}
    if found is None:
        return Evidence(f"{last.location} to {event.location} within {fmt_span(gap)}", (last,), measured)
    fast = gap.total_seconds() > 0
    measured.update(distance_km=round(found.km, 1), speed_kmh=round(found.speed_kmh, 1) if fast else None,
                    distance_exact=found.exact)
    how_far = f"{found.km:,.0f} km" if found.exact else f"at least {found.km:,.0f} km"
    return Evidence(f"{last.location} to {event.location} ({how_far}) in {fmt_span(gap)}: "
                    f"faster than {cfg.max_speed_kmh:,.0f} km/h", (last,), measured)


def far_from_usual_signal(event: Event, prior: Sequence[Event], cfg: FarFromUsualSignal) -> Evidence | None:
    here = geo.lookup(event.location)
    if here is None:
        return None
    since = event.event_time - cfg.lookback
    history = within(prior, since)
    if len(history) < cfg.min_history:
        return None
    places = derived(prior, "place_names", since, _place_names)
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
