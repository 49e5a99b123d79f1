"""Per-user history for the rules, bounded in memory by events per user and event time.

The semantics that make verdicts a function of the input: a user's events are judged in the
order they arrived on the user's partition (offsets order them, and no crash reorders them),
and a rule looks back over its window in event time at the events that arrived before: the
history holds exactly those (it is restored, after a restart or a rebalance, from a changelog
committed together with the input offsets). So a transaction's "prior" events are the earlier
arrivals whose event time is not after its own, itself excluded by id. The history is kept
sorted by (event_time, transaction_id) for the window scans.

Memory: a processor holds every user active within the rules' longest window (a million and
more), so a history is one packed `bytes` value, decoded only while its user is judged (see
`pack_events`): about 60 bytes per event instead of about 600 as objects.
"""

from __future__ import annotations

import bisect
import datetime as dt
import struct
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_COUNT = struct.Struct("<I")
# per event: event time (µs since the epoch, UTC), amount, then the byte lengths of the transaction
# id, location, type, status and payment method, whose UTF-8 bytes follow all the fixed parts in
# event order. (Changelog format 2 had no payment method: `unpack_events_v2` reads it.)
_FIXED = struct.Struct("<qdHHHHH")
_FIXED_V2 = struct.Struct("<qdHHHH")
_NO_RAISED: Mapping[str, tuple[dt.datetime, str]] = MappingProxyType({})
# A user's packed history never exceeds this: its changelog record (plus a small header of raised
# alerts) must fit Kafka's 1 MiB message limit, or the record became an empty value that the
# restore read as "user deleted". Over it, the oldest events go first (the rules look back from now),
# down to 3/4 of it, so the sizing runs once per 128 KiB of new events, not on every one.
MAX_PACKED_BYTES = 512 * 1024


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
    payment_method: str = ""  # "" in histories written before payment methods were kept

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
        payment_method=str(tx.get("payment_method") or ""),
    )


def _micros(t: dt.datetime) -> int:
    return (t - EPOCH) // _MICROSECOND


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    if len(raw) <= 0xFFFF:
        return raw
    # a length is 16 bits: longer text (never seen in the contract's fields) is cut, whole characters kept
    return raw[:0xFFFF].decode("utf-8", "ignore").encode("utf-8")


def pack_events(events: list[Event]) -> bytes:
    """count, the fixed part of every event, then every event's text: one allocation per user."""
    fixed: list[bytes] = []
    texts: list[bytes] = []
    for e in events:
        parts = (_text(e.transaction_id), _text(e.location), _text(e.type), _text(e.status), _text(e.payment_method))
        fixed.append(_FIXED.pack(_micros(e.event_time), e.amount, *map(len, parts)))
        texts.extend(parts)
    return b"".join((_COUNT.pack(len(events)), *fixed, *texts))


def packed_within(events: list[Event], limit: int | None = None) -> bytes:
    """`pack_events` of `events`, or when that is over `limit` (MAX_PACKED_BYTES) bytes, of the newest
    of them that fit in 3/4 of it."""
    limit = MAX_PACKED_BYTES if limit is None else limit
    blob = pack_events(events)
    if len(blob) <= limit:
        return blob  # the usual case: one pack, no sizing
    limit = limit * 3 // 4
    total, start = _COUNT.size, len(events)
    while start > 0:
        e = events[start - 1]
        size = _FIXED.size + sum(len(_text(t)) for t in (e.transaction_id, e.location, e.type, e.status,
                                                         e.payment_method))
        if total + size > limit:
            break
        total += size
        start -= 1
    return pack_events(events[start:])


def unpack_events(blob: bytes) -> list[Event]:
    if not blob:
        return []
    (count,) = _COUNT.unpack_from(blob)
    at = _COUNT.size + count * _FIXED.size
    out = []
    tail = blob[at:]
    if tail.isascii():
        # the usual case: one decode for every text, sliced by the byte lengths (equal to characters)
        text = tail.decode("ascii")
        i = 0
        for micros, amount, n_id, n_loc, n_type, n_status, n_pay in _FIXED.iter_unpack(blob[_COUNT.size:at]):
            a = i + n_id
            b = a + n_loc
            c = b + n_type
            d = c + n_status
            i = d + n_pay
            out.append(Event(EPOCH + micros * _MICROSECOND, text[a - n_id:a], text[a:b], amount, text[b:c],
                             text[c:d], text[d:i]))
        return out
    for micros, amount, n_id, n_loc, n_type, n_status, n_pay in _FIXED.iter_unpack(blob[_COUNT.size:at]):
        texts = []
        for n in (n_id, n_loc, n_type, n_status, n_pay):
            texts.append(blob[at:at + n].decode("utf-8"))
            at += n
        out.append(Event(EPOCH + micros * _MICROSECOND, texts[0], texts[1], amount, texts[2], texts[3], texts[4]))
    return out


def unpack_events_v2(blob: bytes) -> list[Event]:
    """Events packed by changelog format 2 (no payment method): read for the migration to format 3."""
    if not blob:
        return []
    (count,) = _COUNT.unpack_from(blob)
    at = _COUNT.size + count * _FIXED_V2.size
    out = []
    for micros, amount, n_id, n_loc, n_type, n_status in _FIXED_V2.iter_unpack(blob[_COUNT.size:at]):
        texts = []
        for n in (n_id, n_loc, n_type, n_status):
            texts.append(blob[at:at + n].decode("utf-8"))
            at += n
        out.append(Event(EPOCH + micros * _MICROSECOND, texts[0], texts[1], amount, texts[2], texts[3]))
    return out


def _keys(events: list[Event]) -> list[tuple[dt.datetime, str]]:
    return [e.key for e in events]


Raised = dict[str, tuple[dt.datetime, str]]


class UserHistory:
    """One user's recent events, sorted by key, each transaction at most once: a short-lived view
    of the user's entries in a `UserStateStore` (the packed events, and the latest raised alert per
    rule for suppression, kept only for users who have one): no object per user stays in memory."""

    __slots__ = ("_raised_by_user", "_user", "_users")

    def __init__(self, users: dict[str, bytes], raised_by_user: dict[str, Raised], user_id: str) -> None:
        self._users = users
        self._raised_by_user = raised_by_user
        self._user = user_id

    @property
    def _blob(self) -> bytes:
        return self._users[self._user]

    @_blob.setter
    def _blob(self, blob: bytes) -> None:
        self._users[self._user] = blob

    @property
    def events(self) -> list[Event]:
        return unpack_events(self._blob)

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

    def before(self, event: Event) -> list[Event]:
        """The earlier arrivals with an event time not after `event`'s, itself excluded by id."""
        events = self.events
        i = bisect.bisect_right(_keys(events), (event.event_time, _AFTER_ANY_ID))
        return [e for e in events[:i] if e.transaction_id != event.transaction_id]

    def record(self, event: Event, horizon: dt.timedelta, max_events: int) -> list[Event]:
        """`before(event)`, then `add(event)` and `prune` to the horizon, with one decode and one pack."""
        events = self.events
        keys = _keys(events)
        i = bisect.bisect_right(keys, (event.event_time, _AFTER_ANY_ID))
        prior = [e for e in events[:i] if e.transaction_id != event.transaction_id]
        if all(e.transaction_id != event.transaction_id for e in events):
            at = bisect.bisect_right(keys, event.key)
            events.insert(at, event)
            keys.insert(at, event.key)
        cut = bisect.bisect_left(keys, (keys[-1][0] - horizon, ""))
        self._blob = packed_within(events[max(cut, len(events) - max_events):])
        return prior

    @property
    def latest(self) -> dt.datetime | None:
        if not self._blob:
            return None
        (count,) = _COUNT.unpack_from(self._blob)
        if not count:
            return None
        micros = _FIXED.unpack_from(self._blob, _COUNT.size + (count - 1) * _FIXED.size)[0]
        return EPOCH + micros * _MICROSECOND

    def prune(self, oldest: dt.datetime, max_events: int) -> None:
        events = self.events
        cut = bisect.bisect_left(_keys(events), (oldest, ""))
        cut = max(cut, len(events) - max_events)
        if cut > 0:
            self._blob = pack_events(events[cut:])

    def __len__(self) -> int:
        return _COUNT.unpack_from(self._blob)[0] if self._blob else 0


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
        return UserHistory(self._users, self._raised, user_id)

    def _view(self, user_id: str) -> UserHistory | None:
        return UserHistory(self._users, self._raised, user_id) if user_id in self._users else None

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

    def prior(self, user_id: str, event: Event) -> list[Event]:
        """The user's events before this one (what the rules look at); changes nothing."""
        history = self._view(user_id)
        return history.before(event) if history is not None else []

    def recorded(self, user_id: str, transaction_id: str) -> Event | None:
        """The event kept under this id in the user's history, if there; changes nothing (not even the LRU order)."""
        blob = self._users.get(user_id)
        # a byte search first: most transactions are new, and then nothing is decoded
        if not blob or transaction_id.encode("utf-8") not in blob:
            return None
        return next((e for e in unpack_events(blob) if e.transaction_id == transaction_id), None)

    def later_than(self, user_id: str, event: Event) -> list[Event]:
        """The user's events if one is not older than `event` (it arrives late), else []; changes nothing."""
        history = self._view(user_id)
        latest = history.latest if history is not None else None
        return history.events if history and latest is not None and latest >= event.event_time else []

    def raised_of(self, user_id: str) -> Mapping[str, tuple[dt.datetime, str]]:
        return self._raised.get(user_id, _NO_RAISED)

    def record(self, user_id: str, event: Event) -> list[Event]:
        """Add the event and return the user's events before it (what the rules look at)."""
        prior = self.get(user_id).record(event, self.horizon, self.max_events_per_user)
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
            latest = UserHistory(self._users, self._raised, user_id).latest
            if latest is not None and latest >= cutoff:
                break
            del self._users[user_id]
            self._forget(user_id)
            if self.track_dropped:
                self.dropped.append(user_id)
            dropped += 1
        self.evicted += dropped
        return dropped

    def clear(self) -> None:
        self._users.clear()
        self._raised.clear()
        self.dropped.clear()

    def discard(self, user_ids: Iterable[str]) -> None:
        """Forget these users (their partition went to another member)."""
        for user_id in user_ids:
            self._users.pop(user_id, None)
            self._forget(user_id)

    def take_dropped(self) -> list[str]:
        dropped, self.dropped = self.dropped, []
        return dropped
