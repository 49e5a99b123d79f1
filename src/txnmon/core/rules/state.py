"""Per-user history for the rules, bounded in memory by events per user and event time.

The semantics that make verdicts a function of the input: a user's events are judged in the
order they arrived on the user's partition (offsets order them, and no crash reorders them),
and a rule looks back over its window in event time at the events that arrived before: the
history holds exactly those (it is restored, after a restart or a rebalance, from a changelog
committed together with the input offsets). So a transaction's "prior" events are the earlier
arrivals whose event time is not after its own, itself excluded by id. The history is kept
sorted by (event_time, transaction_id) for the window scans.

Memory: a processor holds every user active within the rules' longest window (a million and
more), so a history is one packed `bytes` value (src/txnmon/core/rules/packed.py), read lazily from
the newest event back as far as the rules look (src/txnmon/core/rules/history.py; what was read is
kept for the batch until `end_batch`), and a new event, usually the newest, is appended to the
bytes, not re-packed.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

from txnmon.core.rules.history import Decoded, Prior, micros
from txnmon.core.rules.packed import (
    EPOCH,
    MAX_PACKED_BYTES,
    Event,
    count_of,
    event_from,
    latest_of,
    latest_us,
    pack_events,
    packed_within,
    stored_and_packed,
    unpack_events,
    unpack_events_v2,
)

# the packing moved to src/txnmon/core/rules/packed.py; callers keep importing these names from here
__all__ = ["EPOCH", "MAX_PACKED_BYTES", "Event", "Raised", "UserHistory", "UserStateStore", "event_from",
           "pack_events", "packed_within", "unpack_events", "unpack_events_v2"]
_NO_RAISED: Mapping[str, tuple[dt.datetime, str]] = MappingProxyType({})
# the batch's decoded users: cleared at `end_batch`, or when this many (a backtest has no batches)
MAX_DECODED_USERS = 20_000


_MICROSECOND = dt.timedelta(microseconds=1)


def _keys(events: list[Event]) -> list[tuple[dt.datetime, str]]:
    return [e.key for e in events]


Raised = dict[str, tuple[dt.datetime, str]]


class RecordFollower(Protocol):
    """Something kept in step with the users' histories by their records (the risk model's feature
    timelines, src/txnmon/core/feature_timeline.py): told of each, with the packed history before and after."""

    def recorded(self, user: str, before: bytes, after: bytes, event: Event) -> None: ...

    def clear(self) -> None: ...


class UserHistory:
    """One user's recent events, sorted by key, each transaction at most once: a short-lived view
    of the user's entries in a `UserStateStore` (the packed events, and the latest raised alert per
    rule for suppression, kept only for users who have one): no object per user stays in memory."""

    __slots__ = ("_decoded", "_raised_by_user", "_user", "_users")

    def __init__(self, users: dict[str, bytes], raised_by_user: dict[str, Raised], user_id: str,
                 decoded: dict[str, Decoded] | None = None) -> None:
        self._users = users
        self._raised_by_user = raised_by_user
        self._user = user_id
        self._decoded = decoded  # the store's decoded users of this batch (None: decode every time)

    @property
    def _blob(self) -> bytes:
        return self._users[self._user]

    @_blob.setter
    def _blob(self, blob: bytes) -> None:
        self._users[self._user] = blob

    def _current(self) -> Decoded:
        """The user's events decoded, from the batch's cache while the packed bytes are the ones it
        decoded (a write anywhere replaces the bytes object, and so invalidates the entry)."""
        blob = self._blob
        cache = self._decoded
        found = cache.get(self._user) if cache is not None else None
        if found is not None and found.blob is blob:
            return found
        found = Decoded(blob)
        if cache is not None:
            if len(cache) >= MAX_DECODED_USERS:
                cache.clear()
            cache[self._user] = found
        return found

    @property
    def events(self) -> list[Event]:
        return self._current().all()  # a new list: what the store decoded stays its own
    @property
    def raised(self) -> Mapping[str, tuple[dt.datetime, str]]:
        """rule -> (event time, alert id) of the user's latest raised alert."""
        return self._raised_by_user.get(self._user, _NO_RAISED)

    def note_raised(self, rule: str, at: dt.datetime, alert_id: str) -> None:
        self._raised_by_user.setdefault(self._user, {})[rule] = (at, alert_id)

    def drop_raised(self, rule: str) -> None:
        raised = self._raised_by_user.get(self._user)
        if raised is not None:
            raised.pop(rule, None)
            if not raised:
                del self._raised_by_user[self._user]

    def add(self, event: Event) -> bool:
        """Insert in key order; False (and no change) if this transaction is already here."""
        events = self.events
        if any(e.transaction_id == event.transaction_id for e in events):
            return False
        events.insert(bisect.bisect_right(_keys(events), event.key), event)
        self._blob = packed_within(events)
        return True

    def remove(self, transaction_id: str) -> None:
        events = self.events
        kept = [e for e in events if e.transaction_id != transaction_id]
        if len(kept) != len(events):
            self._blob = pack_events(kept)

    def before(self, event: Event) -> Sequence[Event]:
        """The earlier arrivals with an event time not after `event`'s, itself excluded by id (a
        `Prior`, decoded as far back as it is read, when the history does not hold this id)."""
        return self._before(self._current(), event)

    @staticmethod
    def _before(current: Decoded, event: Event) -> Sequence[Event]:
        i = current.upto(event.event_time)
        # a byte search first: most transactions are new, and then no event is compared
        if event.transaction_id.encode("utf-8") not in current.blob:
            return Prior(current, i)
        return [e for e in current.all()[:i] if e.transaction_id != event.transaction_id]

    def record(self, event: Event, horizon: dt.timedelta, max_events: int,
               judged: tuple[Event, Decoded, Sequence[Event]] | None = None) -> Sequence[Event]:
        """`before(event)`, then `add(event)` and `prune` to the horizon. The packed bytes come out as
        a full re-pack of the result would make them (the changelog's values must not change), but
        the usual case, a new newest event and nothing to prune, only appends it to them. `judged`:
        the (event, decoded history, prior) of the latest `before`, reused when it is this event's
        on these bytes (a judge, then a record of what it judged)."""
        current = self._current()
        if judged is not None and judged[0] is event and judged[1] is current:
            prior = judged[2]
        else:
            prior = self._before(current, event)
        new = not isinstance(prior, list) or all(e.transaction_id != event.transaction_id for e in current.all())
        # the event as it reads back from the bytes, and its bytes: packed once, for both
        stored, one = stored_and_packed(event)
        found = self._recorded(current, event, stored if new else None, horizon, max_events, one)
        if self._decoded is not None:
            if len(self._decoded) >= MAX_DECODED_USERS:
                self._decoded.clear()
            self._decoded[self._user] = found
        self._blob = found.blob
        return prior

    @staticmethod
    def _recorded(current: Decoded, event: Event, stored: Event | None, horizon: dt.timedelta,
                  max_events: int, one: bytes | None = None) -> Decoded:
        """The user's events after `record`, as a new `Decoded` (`current` is left as it was). `stored`:
        the event to insert (as it reads back), None if it is here already; `one`: its packed bytes."""
        blob, n = current.blob, current.count
        if current.appendable and len(blob) <= MAX_PACKED_BYTES:
            # the usual case: the newest event (or none) added, and the oldest cut by the horizon and
            # the count as the full path below would cut them, in place in the bytes
            at_us = micros(event.event_time)
            at_end = stored is None or n == 0 or _not_after(current, n - 1, at_us, event)
            if at_end and (n or stored is not None):
                newest = at_us if stored is not None else current.time_us(n - 1)
                size = n + (stored is not None)
                cut = _first_at_or_after(current, newest - horizon // _MICROSECOND)
                start = max(cut, size - max_events)
                if start == 0 and stored is None:
                    return current  # a re-pack of the same events gives the same bytes
                if start <= n:  # (more only when no event at all may be kept)
                    found = current.rewritten(start, stored, one)
                    if len(found.blob) <= MAX_PACKED_BYTES:
                        return found
        # out of order, pruned, over the size limit, or bytes not packed here: the full re-pack
        events = current.all()
        keys = _keys(events)
        if stored is not None:
            at = bisect.bisect_right(keys, event.key)  # placed by the key it came with
            events.insert(at, stored)
            keys.insert(at, stored.key)
        cut = bisect.bisect_left(keys, (keys[-1][0] - horizon, ""))
        return Decoded(packed_within(events[max(cut, len(events) - max_events):]))

    @property
    def latest(self) -> dt.datetime | None:
        return latest_of(self._blob)

    def prune(self, oldest: dt.datetime, max_events: int) -> None:
        events = self.events
        cut = bisect.bisect_left(_keys(events), (oldest, ""))
        cut = max(cut, len(events) - max_events)
        if cut > 0:
            self._blob = pack_events(events[cut:])

    def __len__(self) -> int:
        return count_of(self._blob)


def _not_after(current: Decoded, i: int, at_us: int, event: Event) -> bool:
    """Is event i's key not after `event`'s? By the packed time alone unless the times are equal
    (then by id, as the keys compare): no event is decoded for a new newest one."""
    t = current.time_us(i)
    return t < at_us or (t == at_us and current.event(i).key <= event.key)


def _first_at_or_after(current: Decoded, at_us: int) -> int:
    """The index of the first event at or after `at_us` (µs since the epoch), the new one excluded."""
    if not current.count or current.time_us(0) >= at_us:
        return 0  # the usual case: nothing has passed the horizon
    return current.first_at_or_after_us(at_us, current.count)


class UserStateStore:
    """Histories of recently active users: least recently used evicted past `max_users`,
    users idle (in event time) longer than `horizon` evicted as the watermark moves on."""

    def __init__(self, max_users: int, max_events_per_user: int, horizon: dt.timedelta) -> None:
        self.max_users = max_users
        self.max_events_per_user = max_events_per_user
        self.horizon = horizon
        self.watermark: dt.datetime | None = None
        self._users: OrderedDict[str, bytes] = OrderedDict()  # user -> packed events, least recently used first
        self._raised: dict[str, Raised] = {}
        self.evicted = 0
        self.track_dropped = False  # the processor turns it on: evicted users become changelog tombstones
        self.dropped: list[str] = []  # users evicted since the caller last took this list
        self._decoded: dict[str, Decoded] = {}  # user -> events decoded in this batch (see `UserHistory`)
        # the latest `prior`'s (user, (event, decoded history, prior)): the judge's work, which the
        # record of the same event reuses (see `UserHistory.record`)
        self._judged: tuple[str, tuple[Event, Decoded, Sequence[Event]]] | None = None
        self.follower: RecordFollower | None = None  # told of every record (see `RecordFollower`)

    def __len__(self) -> int:
        return len(self._users)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._users

    def get(self, user_id: str) -> UserHistory:
        """The user's history (created empty if unknown), marked as recently used."""
        if user_id in self._users:
            self._users.move_to_end(user_id)
        else:
            self._users[user_id] = b""
            if len(self._users) > self.max_users:
                gone, _ = self._users.popitem(last=False)
                self._forget(gone)
                if self.track_dropped:
                    self.dropped.append(gone)
                self.evicted += 1
        return UserHistory(self._users, self._raised, user_id, self._decoded)

    def _view(self, user_id: str) -> UserHistory | None:
        return UserHistory(self._users, self._raised, user_id, self._decoded) if user_id in self._users else None

    def _forget(self, user_id: str) -> None:
        self._raised.pop(user_id, None)

    def packed(self, user_id: str) -> tuple[bytes, Mapping[str, tuple[dt.datetime, str]]]:
        """The user's packed events and raised alerts, as the state changelog keeps them."""
        return self._users[user_id], self._raised.get(user_id, _NO_RAISED)

    def load_packed(self, user_id: str, events: bytes, raised: Mapping[str, tuple[dt.datetime, str]]) -> None:
        """Set a user's state from `packed` output (a restore from the changelog): no decoding."""
        self.get(user_id)
        self._users[user_id] = events
        self._forget(user_id)
        if raised:
            self._raised[user_id] = dict(raised)

    def missing(self, user_ids: Iterable[str]) -> set[str]:
        return {u for u in user_ids if u not in self._users}
    def preload(self, user_id: str, events: Iterable[Event]) -> None:
        """Seed a user's history (e.g. from MongoDB after a restart)."""
        history = self.get(user_id)
        for event in events:
            history.add(event)
        self._prune(history)

    def prior(self, user_id: str, event: Event) -> Sequence[Event]:
        """The user's events before this one (what the rules look at); changes nothing."""
        history = self._view(user_id)
        if history is None:
            return []
        current = history._current()
        prior = history._before(current, event)
        self._judged = (user_id, (event, current, prior))
        return prior

    def events_of(self, user_id: str) -> list[Event]:
        """The user's events (a new list; [] for an unknown user); changes nothing but the batch's decode cache."""
        history = self._view(user_id)
        return history.events if history is not None else []

    def recorded(self, user_id: str, transaction_id: str) -> Event | None:
        """The event kept under this id in the user's history, if there; changes nothing (not even the LRU order)."""
        blob = self._users.get(user_id)
        # a byte search first: most transactions are new, and then nothing is decoded
        if not blob or transaction_id.encode("utf-8") not in blob:
            return None
        return next((e for e in unpack_events(blob) if e.transaction_id == transaction_id), None)

    def later_than(self, user_id: str, event: Event) -> list[Event]:
        """The user's events if one is not older than `event` (it arrives late), else []; changes nothing."""
        blob = self._users.get(user_id)
        # the newest packed time against the event's, in µs: no datetime made, nothing decoded (usual: [])
        # an only event withdrawn leaves an empty history (a count of 0), not no history
        if not count_of(blob) or latest_us(blob) < micros(event.event_time):
            return []
        return UserHistory(self._users, self._raised, user_id, self._decoded).events

    def raised_of(self, user_id: str) -> Mapping[str, tuple[dt.datetime, str]]:
        return self._raised.get(user_id, _NO_RAISED)

    def record(self, user_id: str, event: Event) -> Sequence[Event]:
        """Add the event and return the user's events before it (what the rules look at)."""
        judged, self._judged = self._judged, None
        history = self.get(user_id)
        before = self._users[user_id]
        prior = history.record(event, self.horizon, self.max_events_per_user,
                               judged[1] if judged is not None and judged[0] == user_id else None)
        if self.follower is not None:
            self.follower.recorded(user_id, before, self._users[user_id], event)
        if self.watermark is None or event.event_time > self.watermark:
            self.watermark = event.event_time
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
            user_id = next(iter(self._users))
            latest = UserHistory(self._users, self._raised, user_id, self._decoded).latest
            if latest is not None and latest >= cutoff:
                break
            del self._users[user_id]
            self._forget(user_id)
            if self.track_dropped:
                self.dropped.append(user_id)
            dropped += 1
        self.evicted += dropped
        return dropped

    def end_batch(self) -> None:
        """Let go of the batch's decoded users (the packed bytes are always current: nothing to write)."""
        self._decoded.clear()
        self._judged = None

    def clear(self) -> None:
        if self.follower is not None:
            self.follower.clear()
        self._decoded.clear()
        self._judged = None
        self._users.clear()
        self._raised.clear()
        self.dropped.clear()

    def discard(self, user_ids: Iterable[str]) -> None:
        """Forget these users (their partition went to another member)."""
        for user_id in user_ids:
            self._users.pop(user_id, None)
            self._decoded.pop(user_id, None)
            self._forget(user_id)
        self._judged = None

    def take_dropped(self) -> list[str]:
        dropped, self.dropped = self.dropped, []
        return dropped
