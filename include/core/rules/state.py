"""Per-user history for the rules, bounded in memory by events per user and event time.

The semantics that make verdicts a function of the input: a user's events are judged in the
order they arrived on the user's partition (offsets order them, and no crash reorders them),
and a rule looks back over its window in event time at the events that arrived before: the
history holds exactly those (it is restored, after a restart or a rebalance, from a changelog
committed together with the input offsets). So a transaction's "prior" events are the earlier
arrivals whose event time is not after its own, itself excluded by id. The history is kept
sorted by (event_time, transaction_id) for the window scans.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple


class _AfterAnyId:
    """Sorts after every transaction id: (t, _AFTER_ANY_ID) bounds all keys at event time t."""

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return True


_AFTER_ANY_ID = _AfterAnyId()


class Event(NamedTuple):
    event_time: dt.datetime
    transaction_id: str
    location: str
    amount: float
    type: str
    status: str

    @property
    def key(self) -> tuple[dt.datetime, str]:
        return (self.event_time, self.transaction_id)


def event_from(tx: Mapping[str, Any]) -> Event:
    """The few fields of a transaction that the rules look back at."""
    return Event(
        event_time=tx["event_time"],
        transaction_id=str(tx["transaction_id"]),
        location=str(tx.get("location", "")),
        amount=float(tx.get("amount", 0.0)),
        type=str(tx.get("type") or "purchase"),
        status=str(tx.get("status") or "success"),
    )


class UserHistory:
    """One user's recent events, sorted by key, each transaction at most once."""

    __slots__ = ("_keys", "events", "ids", "raised")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._keys: list[tuple[dt.datetime, str]] = []
        self.ids: set[str] = set()
        # rule -> (event time, alert id) of the user's latest raised alert, for suppression
        self.raised: dict[str, tuple[dt.datetime, str]] = {}

    def add(self, event: Event) -> bool:
        """Insert in key order; False (and no change) if this transaction is already here."""
        if event.transaction_id in self.ids:
            return False
        key = event.key
        i = bisect.bisect_right(self._keys, key)
        self._keys.insert(i, key)
        self.events.insert(i, event)
        self.ids.add(event.transaction_id)
        return True

    def remove(self, transaction_id: str) -> None:
        if transaction_id not in self.ids:
            return
        i = next(i for i, e in enumerate(self.events) if e.transaction_id == transaction_id)
        del self.events[i]
        del self._keys[i]
        self.ids.discard(transaction_id)

    def before(self, event: Event) -> list[Event]:
        """The earlier arrivals with an event time not after `event`'s, itself excluded by id."""
        i = bisect.bisect_right(self._keys, (event.event_time, _AFTER_ANY_ID))
        prior = self.events[:i]
        if event.transaction_id in self.ids:
            prior = [e for e in prior if e.transaction_id != event.transaction_id]
        return prior

    @property
    def latest(self) -> dt.datetime | None:
        return self._keys[-1][0] if self._keys else None

    def prune(self, oldest: dt.datetime, max_events: int) -> None:
        cut = bisect.bisect_left(self._keys, (oldest, ""))
        cut = max(cut, len(self.events) - max_events)
        if cut > 0:
            for gone in self.events[:cut]:
                self.ids.discard(gone.transaction_id)
            del self.events[:cut]
            del self._keys[:cut]

    def __len__(self) -> int:
        return len(self.events)


class UserStateStore:
    """Histories of recently active users: least recently used evicted past `max_users`,
    users idle (in event time) longer than `horizon` evicted as the watermark moves on."""

    def __init__(self, max_users: int, max_events_per_user: int, horizon: dt.timedelta) -> None:
        self.max_users = max_users
        self.max_events_per_user = max_events_per_user
        self.horizon = horizon
        self.watermark: dt.datetime | None = None
        self._users: OrderedDict[str, UserHistory] = OrderedDict()
        self.evicted = 0
        self.track_dropped = False  # the processor turns it on: evicted users become changelog tombstones
        self.dropped: list[str] = []  # users evicted since the caller last took this list

    def __len__(self) -> int:
        return len(self._users)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._users

    def get(self, user_id: str) -> UserHistory:
        """The user's history (created empty if unknown), marked as recently used."""
        history = self._users.get(user_id)
        if history is None:
            history = self._users[user_id] = UserHistory()
            if len(self._users) > self.max_users:
                gone, _ = self._users.popitem(last=False)
                if self.track_dropped:
                    self.dropped.append(gone)
                self.evicted += 1
        else:
            self._users.move_to_end(user_id)
        return history

    def missing(self, user_ids: Iterable[str]) -> set[str]:
        return {u for u in user_ids if u not in self._users}

    def preload(self, user_id: str, events: Iterable[Event]) -> None:
        """Seed a user's history (e.g. from MongoDB after a restart)."""
        history = self.get(user_id)
        for event in events:
            history.add(event)
        self._prune(history)

    def prior(self, user_id: str, event: Event) -> list[Event]:
        """The user's events before this one (what the rules look at); changes nothing."""
        history = self._users.get(user_id)
        return history.before(event) if history is not None else []

    def raised_of(self, user_id: str) -> dict[str, tuple[dt.datetime, str]]:
        history = self._users.get(user_id)
        return history.raised if history is not None else {}

    def record(self, user_id: str, event: Event) -> list[Event]:
        """Add the event and return the user's events before it (what the rules look at)."""
        history = self.get(user_id)
        prior = history.before(event)
        history.add(event)
        if self.watermark is None or event.event_time > self.watermark:
            self.watermark = event.event_time
        self._prune(history)
        return prior

    def _prune(self, history: UserHistory) -> None:
        if history.latest is not None:
            history.prune(history.latest - self.horizon, self.max_events_per_user)

    def evict_idle(self) -> int:
        """Drop users whose newest event is older than watermark - horizon. Amortised O(evicted)."""
        if self.watermark is None:
            return 0
        cutoff = self.watermark - self.horizon
        dropped = 0
        # The LRU front is where idle users collect; stop at the first one still active.
        while self._users:
            user_id, history = next(iter(self._users.items()))
            if history.latest is not None and history.latest >= cutoff:
                break
            del self._users[user_id]
            if self.track_dropped:
                self.dropped.append(user_id)
            dropped += 1
        self.evicted += dropped
        return dropped

    def clear(self) -> None:
        self._users.clear()
        self.dropped.clear()

    def discard(self, user_ids: Iterable[str]) -> None:
        """Forget these users (their partition went to another member)."""
        for user_id in user_ids:
            self._users.pop(user_id, None)

    def take_dropped(self) -> list[str]:
        dropped, self.dropped = self.dropped, []
        return dropped
