"""A user's history packed into one `bytes` value, and the events it holds.

Memory: a processor holds every user active within the rules' longest window (a million and
more), so a history is one packed `bytes` value (see `pack_events`): about 60 bytes per event
instead of about 600 as objects. The bytes are also the state changelog's value
(src/txnmon/core/state_codec.py), so for the same events they must never change.

Decoding and re-packing a whole history on every transaction was most of the judging cost (issue
29): `append_event` adds the newest event to the bytes without decoding them, and
src/txnmon/core/rules/history.py reads a history lazily, from its newest event back only as far as a
rule looks.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_COUNT = struct.Struct("<I")
_ONE = _COUNT.pack(1)
_tuple_new = tuple.__new__
# per event: event time (µs since the epoch, UTC), amount, then the byte lengths of the transaction
# id, location, type, status and payment method, whose UTF-8 bytes follow all the fixed parts in
# event order. (Changelog format 2 had no payment method: `unpack_events_v2` reads it.)
_FIXED = struct.Struct("<qdHHHHH")
_FIXED_V2 = struct.Struct("<qdHHHH")
# A user's packed history never exceeds this: its changelog record (plus a small header of raised
# alerts) must fit Kafka's 1 MiB message limit, or the record became an empty value that the
# restore read as "user deleted". Over it, the oldest events go first (the rules look back from now),
# down to 3/4 of it, so the sizing runs once per 128 KiB of new events, not on every one.
MAX_PACKED_BYTES = 512 * 1024


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
    get = tx.get
    # (event_time, transaction_id, location, amount, type, status, payment_method), made as `Event._make`
    # makes it: once per judged transaction, and the keyword call cost a third of a microsecond more
    return _tuple_new(Event, (tx["event_time"], str(tx["transaction_id"]), str(get("location", "")),
                              float(get("amount", 0.0)), str(get("type") or "purchase"),
                              str(get("status") or "success"), str(get("payment_method") or "")))


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
    return _unpack(blob)[0]


def _unpack(blob: bytes) -> tuple[list[Event], bool]:
    """The events, and whether `blob` is exactly `pack_events` of them (no bytes after the last text):
    only then may `append_event` extend it and give what a full re-pack gives."""
    if not blob:
        return [], True
    (count,) = _COUNT.unpack_from(blob)
    at = _COUNT.size + count * _FIXED.size
    out, used = events_of(_FIXED.iter_unpack(blob[_COUNT.size:at]), blob[at:])
    return out, used == len(blob) - at


def events_of(rows: Iterable[tuple[int, float, int, int, int, int, int]], tail: bytes) -> tuple[list[Event], int]:
    """The events of these fixed parts, whose texts `tail` starts with; and how many bytes of it they used."""
    out = []
    new, epoch, micro = _tuple_new, EPOCH, _MICROSECOND
    if tail.isascii():
        # the usual case: one decode for every text, sliced by the byte lengths (equal to characters);
        # each Event made as `Event._make` makes it, without the call of its Python-level __new__
        text = tail.decode("ascii")
        i = 0
        for micros, amount, n_id, n_loc, n_type, n_status, n_pay in rows:
            a = i + n_id
            b = a + n_loc
            c = b + n_type
            d = c + n_status
            i = d + n_pay
            out.append(new(Event, (epoch + micros * micro, text[a - n_id:a], text[a:b], amount, text[b:c],
                                   text[c:d], text[d:i])))
        return out, i
    at = 0
    for micros, amount, n_id, n_loc, n_type, n_status, n_pay in rows:
        texts = []
        for n in (n_id, n_loc, n_type, n_status, n_pay):
            texts.append(tail[at:at + n].decode("utf-8"))
            at += n
        out.append(new(Event, (epoch + micros * micro, texts[0], texts[1], amount, texts[2], texts[3], texts[4])))
    return out, at


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


def _plain_text(event: Event) -> str | None:
    """The event's five texts as one ASCII string when it reads back from the bytes as an equal Event in
    every way (the same types, UTC by the same tzinfo object, texts uncut, no NaN whose identity tuple
    equality would notice): that string is then the texts' packed bytes. None otherwise. Events made by
    `event_from` from a UTC time always read back as themselves."""
    t, tid, place, amount, kind, status, method = event if type(event) is Event else (None,) * 7
    if type(t) is not dt.datetime or t.tzinfo is not dt.UTC or t.fold or type(amount) is not float or amount != amount:
        return None
    if not (type(tid) is str and type(place) is str and type(kind) is str and type(status) is str
            and type(method) is str):
        return None
    text = tid + place + kind + status + method
    return text if text.isascii() and len(text) <= 0xFFFF else None  # (the sum under it: each text is)


def as_stored(event: Event) -> Event:
    """The event as it reads back from the packed bytes (UTC time, texts cut as `_text` cuts them)."""
    return stored_and_packed(event)[0]


def stored_and_packed(event: Event) -> tuple[Event, bytes]:
    """`as_stored(event)` and `pack_events([event])`, packing once (a record needs both)."""
    text = _plain_text(event)
    if text is not None:  # the usual case: packed from the one string, and the event is its own read-back
        t, tid, place, amount, kind, status, method = event
        return event, b"".join((_ONE, _FIXED.pack(_micros(t), amount, len(tid), len(place), len(kind), len(status),
                                                  len(method)), text.encode("ascii")))
    parts = [_text(x) for x in (event.transaction_id, event.location, event.type, event.status, event.payment_method)]
    one = b"".join((_ONE, _FIXED.pack(_micros(event.event_time), event.amount, *map(len, parts)), *parts))
    return _unpack(one)[0][0], one


def append_event(blob: bytes, event: Event) -> bytes:
    """`pack_events(unpack_events(blob) + [event])` for an appendable `blob` (see `Decoded`) with
    no decoding: the count patched, the new fixed part and texts put after the others."""
    return append_packed(blob, pack_events([event]))


def append_packed(blob: bytes, one: bytes) -> bytes:
    """`append_event` of the event that `one` (`pack_events` of it alone) packs."""
    if not blob:
        return one
    (count,) = _COUNT.unpack_from(blob)
    split = _COUNT.size + count * _FIXED.size
    mid = _COUNT.size + _FIXED.size
    return b"".join((_COUNT.pack(count + 1), blob[_COUNT.size:split], one[_COUNT.size:mid], blob[split:], one[mid:]))


def texts_start(blob: bytes) -> int:
    """Where the texts begin in a non-empty `blob`: after the count and every fixed part."""
    return _COUNT.size + count_of(blob) * _FIXED.size


def count_of(blob: bytes) -> int:
    return _COUNT.unpack_from(blob)[0] if blob else 0


def latest_us(blob: bytes) -> int:
    """The newest event time in a non-empty `blob`, in µs since the epoch, without decoding."""
    return int(_FIXED.unpack_from(blob, _COUNT.size + (count_of(blob) - 1) * _FIXED.size)[0])


def latest_of(blob: bytes) -> dt.datetime | None:
    """The newest event time in `blob` (its last event: they are kept sorted), without decoding."""
    count = count_of(blob)
    if not count:
        return None
    micros = _FIXED.unpack_from(blob, _COUNT.size + (count - 1) * _FIXED.size)[0]
    return EPOCH + micros * _MICROSECOND


# Reading one field of a window of events in the packed bytes, with no `Event` made: most transactions
# need only "is every place in the window this one?", and decoding the events (a datetime and five
# strings each) to answer it was a tenth of judging them (issue 29). Only the window's fixed parts and
# those after it are read, so the cost is the window's, not the history's.

_LENGTHS = struct.Struct("<16x5H")  # one event's fixed part read for its five text lengths only


def located_at(blob: bytes, count: int, lo: int, end: int, place: bytes) -> bool:
    """Whether every event of lo..end-1 has exactly `place` (UTF-8) as its location. `blob` must be exactly
    `pack_events` of its `count` events (`Decoded.appendable`): the texts of events lo.. end the bytes."""
    rows = list(_LENGTHS.iter_unpack(blob[_COUNT.size + lo * _FIXED.size:_COUNT.size + count * _FIXED.size]))
    at, size = len(blob) - sum(map(sum, rows)), len(place)
    for n_id, n_loc, n_type, n_status, n_pay in rows[:end - lo]:
        if n_loc != size or not blob.startswith(place, at + n_id):
            return False
        at += n_id + n_loc + n_type + n_status + n_pay
    return True
