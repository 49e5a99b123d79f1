"""What rules and signals share: `Evidence`, the event-time window scan, and how explanations
print amounts, spans and counted ids."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple

from txnmon.core.rules.state import Event


class Evidence(NamedTuple):
    """A signal present on a transaction: what it saw, and the earlier events it counted."""

    reason: str
    counted: tuple[Event, ...] = ()
    measured: dict[str, Any] | None = None


# An explanation lists at most this many counted ids (the newest) and this many places or methods:
# the count stays exact in `counted_total`, and an alert stays a few KB whatever a user sends (180
# counted ids of 60 KB, listed twice, once made a 21 MB alert that MongoDB refused).
MAX_LISTED = 50


def listed_ids(events: Sequence[Event]) -> list[str]:
    """The ids of the newest `MAX_LISTED` of `events`, oldest first."""
    return [e.transaction_id for e in sorted(events, key=lambda e: e.key)[-MAX_LISTED:]]


def with_counted(out: dict[str, Any], events: Sequence[Event]) -> dict[str, Any]:
    """`out` with `counted` (see `listed_ids`) and, when that list is cut, `counted_total`."""
    out["counted"] = listed_ids(events)
    if len(events) > MAX_LISTED:
        out["counted_total"] = len(events)
    return out


def within(prior: Sequence[Event], since: dt.datetime) -> list[Event]:
    """The events of `prior` at or after `since`, newest first."""
    # prior is sorted by event time: walk back from the newest until outside the window (newest first)
    out: list[Event] = []
    for event in reversed(prior):
        if event.event_time < since:
            break
        out.append(event)
    return out


def fmt_amount(amount: float) -> str:
    """An amount as the explanations print it: no decimals when whole."""
    return f"{amount:,.0f}" if float(amount).is_integer() else f"{amount:,.2f}"


def fmt_span(delta: dt.timedelta) -> str:
    """A duration as the explanations print it: seconds, minutes, hours or days."""
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


