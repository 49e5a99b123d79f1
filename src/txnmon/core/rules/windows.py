"""What rules and signals share: `Evidence`, the event-time window scan, and how explanations
print amounts, spans and counted ids."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, overload

from txnmon.core.rules.history import Prior, newest_since
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
    """The events of `prior` at or after `since`, newest first (a `Shared` prior's list is shared:
    callers read it, never change it)."""
    if type(prior) is Shared:
        return prior.window(since)
    return _scan(prior, since)


def _scan(prior: Sequence[Event], since: dt.datetime) -> list[Event]:
    if type(prior) is Prior:
        return newest_since(prior, since)  # the same walk, on the history's decoded list
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




class Shared(Sequence[Event]):
    """One transaction's earlier events as its rules and signals read them: each window is scanned
    once, and what is worked out from it (places, countries, methods used) once, for every signal
    and typology that asks. A big amount in a new place asked four signals for the same 30 days,
    each scanning them again (issue 29)."""

    __slots__ = ("_memo", "prior")

    def __init__(self, prior: Sequence[Event]) -> None:
        self.prior = prior  # the history's own sequence (a lazy `Prior` stays one: see `unshared`)
        self._memo: dict[Any, Any] = {}

    def __len__(self) -> int:
        return len(self.prior)

    @overload
    def __getitem__(self, i: int) -> Event: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Event]: ...

    def __getitem__(self, i: int | slice) -> Event | Sequence[Event]:
        return self.prior[i]

    def __iter__(self) -> Iterator[Event]:
        return iter(self.prior)

    def __reversed__(self) -> Iterator[Event]:
        return reversed(self.prior)

    def window(self, since: dt.datetime) -> list[Event]:
        """`within(prior, since)`, scanned on the first ask."""
        found = self._memo.get(since)
        if found is None:
            found = self._memo[since] = _scan(self.prior, since)
        return found

    def derived(self, what: str, since: dt.datetime, fn: Callable[[list[Event]], Any]) -> Any:
        """`fn(within(prior, since))`, worked out on the first ask; `what` names `fn`'s answer."""
        key = (what, since)
        if key in self._memo:
            return self._memo[key]
        found = self._memo[key] = fn(self.window(since))
        return found


def shared(prior: Sequence[Event]) -> Shared:
    """`prior` as a `Shared` (itself if it is one already)."""
    return prior if type(prior) is Shared else Shared(prior)


def unshared(prior: Sequence[Event]) -> Sequence[Event]:
    """The sequence a `Shared` reads (for what asks the history itself, such as its kept amounts)."""
    return prior.prior if type(prior) is Shared else prior


def derived(prior: Sequence[Event], what: str, since: dt.datetime, fn: Callable[[list[Event]], Any]) -> Any:
    """`fn(within(prior, since))`, shared by whoever asks the same of the same `Shared` prior."""
    return prior.derived(what, since, fn) if type(prior) is Shared else fn(_scan(prior, since))
