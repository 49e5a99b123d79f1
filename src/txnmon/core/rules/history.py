"""A user's packed history read lazily: from its newest event back only as far as a rule looks.

Most rules look back minutes or hours, a few 30 days, and a history holds up to 30 days, so decoding
it whole for each transaction made judging cost grow with history (issue 29). The packed bytes keep
events sorted by time with fixed-size parts first (src/txnmon/core/rules/packed.py), so an event's
time is read in place, a window is found by bisection, and only the events in it are decoded.

`Decoded` belongs to one packed value (its `blob`) and never changes what it has read: a record makes
a new one for the new bytes, handing over what was decoded (`rewritten`). `Prior` is what a rule sees,
the events before a transaction, as a sequence that decodes on demand; `usual_amounts` answers the
median's question (the non-refund amounts within a lookback, sorted) from a sorted list kept as the
window slides, not from a scan of the history.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import itertools
import struct
import sys
from collections.abc import Iterator, Sequence
from typing import overload

from txnmon.core.rules.packed import (
    _COUNT,
    _FIXED,
    EPOCH,
    Event,
    _unpack,
    append_event,
    append_packed,
    count_of,
    events_of,
    located_at,
)

_TIME = struct.Struct("<q")
_MICROSECOND = dt.timedelta(microseconds=1)
_LITTLE = sys.byteorder == "little"
# decode at least this many events at a time (and as many as already are), so a walk back is linear
# and a short history (a day's) is decoded in one go
_CHUNK = 16


def micros(t: dt.datetime) -> int:
    return (t - EPOCH) // _MICROSECOND


_ONE_FIXED_PART = struct.Struct("<q8x5H")  # one event's time and five text lengths, its amount skipped
_ONE_STRUCT_UP_TO = 256  # events read with one cached struct; longer histories one event at a time


@functools.lru_cache(maxsize=_ONE_STRUCT_UP_TO)
def _fixed_parts(count: int) -> struct.Struct:
    """The fixed parts of `count` events as one struct: each event's time and five text lengths (its
    amount skipped), so one C call reads what a transaction's bisections and the appendable check need.
    Only for counts up to _ONE_STRUCT_UP_TO: building one costs time and memory in proportion to it."""
    return struct.Struct("<" + "q8x5H" * count)


def _flat_fixed_parts(blob: bytes, count: int) -> tuple[int, ...] | list[int]:
    """Every event's time and text lengths, flat (six values an event). The caller has checked that
    the blob holds `count` fixed parts: a damaged count never sizes a struct (issue 29 review)."""
    if count <= _ONE_STRUCT_UP_TO:
        return _fixed_parts(count).unpack_from(blob, _COUNT.size)
    view = memoryview(blob)[_COUNT.size:_COUNT.size + count * _FIXED.size]
    return list(itertools.chain.from_iterable(_ONE_FIXED_PART.iter_unpack(view)))


def _text_end(blob: bytes, count: int) -> int:
    """Where the texts of all `count` events end: the byte lengths summed from the fixed parts."""
    at = _COUNT.size + count * _FIXED.size
    fixed = memoryview(blob)[_COUNT.size:at]
    if _LITTLE and len(fixed) == at - _COUNT.size:
        halves = fixed.cast("H")  # 13 per event: time (4), amount (4), then the five text lengths
        return at + sum(sum(halves[k::13]) for k in range(8, 13))
    return at + sum(sum(row[2:]) for row in _FIXED.iter_unpack(blob[_COUNT.size:at]))


class Decoded:
    """The events of one packed value, decoded from the newest back on demand."""

    __slots__ = ("_appendable", "_suffix", "_text_at", "_times", "_usual", "blob", "count")

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.count = count_of(blob)
        self._suffix: list[Event] = []  # the newest len(_suffix) events, oldest first
        self._text_at: int | None = None  # where the texts of `_suffix` begin (None: nothing decoded yet)
        self._appendable: bool | None = None
        self._usual: tuple[dt.timedelta, int, int, list[float]] | None = None  # see `usual_amounts`
        # every event's time in µs, read in one go on the first bisection (None: not read yet, or the
        # bytes are too short for their count: then each time is read where it is, failing as before)
        self._times: list[int] | None = None

    def _read_times(self) -> list[int] | None:
        """`_times`, read with the text lengths in one C call, which also answer `appendable`: a
        transaction's bisections (its window per rule, where it goes, the horizon's cut) were about ten
        Python-level reads of one time each (issue 29)."""
        if self._times is None and self.count:
            if len(self.blob) < _COUNT.size + self.count * _FIXED.size:
                return None  # too short for its count (damaged): each time is read where it is, as before
            flat = _flat_fixed_parts(self.blob, self.count)
            times = self._times = list(flat[::6])
            if self._appendable is None:  # `_text_end`'s sum, from the same read
                self._appendable = (_COUNT.size + self.count * _FIXED.size + sum(flat) - sum(times)
                                    == len(self.blob))
        return self._times

    @property
    def appendable(self) -> bool:
        """Is `blob` exactly `pack_events` of its events? (see packed.py's `_unpack`)"""
        if self._appendable is None and self.count:
            self._read_times()
        if self._appendable is None:
            try:
                self._appendable = _text_end(self.blob, self.count) == len(self.blob)
            except (struct.error, TypeError, ValueError):
                self._appendable = False  # a damaged value: `all` decodes it as before (and fails as before)
        return self._appendable

    def time_us(self, i: int) -> int:
        """Event i's time (0 <= i < count)."""
        times = self._times if self._times is not None else self._read_times()
        if times is not None:
            return times[i]
        return int(_TIME.unpack_from(self.blob, _COUNT.size + i * _FIXED.size)[0])

    def upto(self, t: dt.datetime) -> int:
        """How many events have an event time not after `t` (they are sorted by it)."""
        n = self.count
        if not n:
            return 0
        at = micros(t)
        if self.time_us(n - 1) <= at:
            return n
        if self._times is not None:  # the same steps as the loop below, in C
            return bisect.bisect_right(self._times, at, 0, n - 1)
        lo, hi = 0, n - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.time_us(mid) <= at:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def since(self, t: dt.datetime, end: int) -> int:
        """The first index below `end` whose event time is at or after `t` (`end` if none)."""
        return self.first_at_or_after_us(micros(t), end)

    def first_at_or_after_us(self, at: int, end: int) -> int:
        """`since` for a time in µs since the epoch."""
        times = self._times if self._times is not None else self._read_times()
        if times is not None:  # the same steps as the loop below, in C
            return bisect.bisect_left(times, at, 0, end)
        lo, hi = 0, end
        while lo < hi:
            mid = (lo + hi) // 2
            if self.time_us(mid) < at:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _decode_back(self, i: int) -> None:
        """Make sure events i.. are decoded."""
        have = self.count - len(self._suffix)
        if i >= have:
            return
        if not self.appendable:
            self._suffix = _unpack(self.blob)[0]
            return
        i = max(0, min(i, have - max(_CHUNK, len(self._suffix))))
        texts = _COUNT.size + self.count * _FIXED.size
        rows = list(_FIXED.iter_unpack(self.blob[_COUNT.size + i * _FIXED.size:_COUNT.size + have * _FIXED.size]))
        end = len(self.blob) if self._text_at is None else self._text_at
        # the oldest event's texts start right after the fixed parts: no lengths to sum (the usual case
        # of the shipped rules, which look back as far as the history is kept)
        start = texts if i == 0 else end - sum(r[2] + r[3] + r[4] + r[5] + r[6] for r in rows)
        self._suffix = events_of(rows, self.blob[start:end])[0] + self._suffix
        self._text_at = start

    def event(self, i: int) -> Event:
        self._decode_back(i)
        return self._suffix[i - (self.count - len(self._suffix))]

    def all(self) -> list[Event]:
        """Every event (a new list)."""
        self._decode_back(0)
        return list(self._suffix)

    def text_bytes(self, a: int, b: int) -> int:
        """The bytes of text of events a..b-1."""
        rows = _FIXED.iter_unpack(self.blob[_COUNT.size + a * _FIXED.size:_COUNT.size + b * _FIXED.size])
        return sum(r[2] + r[3] + r[4] + r[5] + r[6] for r in rows)

    def rewritten(self, k: int, stored: Event | None, one: bytes | None = None) -> Decoded:
        """The `Decoded` of this (appendable) history without its `k` oldest events and with `stored`
        after its newest (None: nothing added): its bytes cut and appended to as `pack_events` of
        those events would make them, and what was decoded and summed handed over (this one forgets
        it: it is no longer the user's). `one`: `pack_events([stored])`, when the caller has it."""
        n, blob = self.count, self.blob
        texts = _COUNT.size + n * _FIXED.size
        dropped = self.text_bytes(0, k) if k else 0
        out = blob if not k else b"".join((_COUNT.pack(n - k), blob[_COUNT.size + k * _FIXED.size:texts],
                                            blob[texts + dropped:]))
        if stored is not None:
            out = append_packed(out, one) if one is not None else append_event(out, stored)
        new = Decoded(out)
        new._appendable = True
        if self._times is not None:  # the times read stay read: the cut ones off, the new one on
            new._times = self._times[k:]
            if stored is not None:
                new._times.append(_TIME.unpack_from(one, _COUNT.size)[0] if one is not None
                                  else micros(stored.event_time))
        added = stored is not None
        suffix, first = self._suffix, n - len(self._suffix)  # the oldest decoded event
        text_at = len(blob) if self._text_at is None else self._text_at
        if first < k:  # decoded events were cut: the rest start further on
            text_at += self.text_bytes(first, k)
            suffix = suffix[k - first:]
        # every text moved down by what was cut and up by the new fixed part
        new._text_at = text_at - k * _FIXED.size - dropped + added * _FIXED.size
        new._suffix = [*suffix, stored] if stored is not None else suffix
        usual = self._usual
        if usual is not None and usual[2] == n and usual[1] >= k:
            lookback, lo, hi, amounts = usual
            if stored is not None and stored.type != "refund":
                if stored.amount != stored.amount:
                    amounts = None  # type: ignore[assignment]
                else:
                    bisect.insort(amounts, stored.amount)
            if amounts is not None:
                new._usual = (lookback, lo - k, hi - k + added, amounts)
        self._suffix, self._text_at, self._usual = [], None, None
        return new

    def usual_amounts(self, since: dt.datetime, lookback: dt.timedelta, end: int) -> list[float] | None:
        """The non-refund amounts of events [.., end) at or after `since`, sorted; None when a NaN
        makes sorting order-dependent. Kept for the user's next transaction: the window slides
        forward (the expired leave by bisection, the new arrive by insort) instead of being rebuilt."""
        lo = self.since(since, end)
        kept = self._usual
        if kept is not None and kept[0] == lookback and kept[2] == end and kept[1] <= lo:
            amounts = kept[3]
            for i in range(kept[1], lo):
                e = self.event(i)
                if e.type != "refund":
                    del amounts[bisect.bisect_left(amounts, e.amount)]
        else:
            self._decode_back(lo)
            first = self.count - len(self._suffix)  # events lo..end-1 are decoded: sliced, not looked up
            amounts = [e.amount for e in self._suffix[lo - first:end - first] if e.type != "refund"]
            if any(a != a for a in amounts):
                self._usual = None
                return None
            amounts.sort()
        self._usual = (lookback, lo, end, amounts)
        return amounts


class Prior(Sequence[Event]):
    """The first `end` events of a `Decoded` (a transaction's earlier arrivals), decoded on demand."""

    __slots__ = ("_decoded", "_end")

    def __init__(self, decoded: Decoded, end: int) -> None:
        self._decoded = decoded
        self._end = end

    def __len__(self) -> int:
        return self._end

    @overload
    def __getitem__(self, i: int) -> Event: ...

    @overload
    def __getitem__(self, i: slice) -> list[Event]: ...

    def __getitem__(self, i: int | slice) -> Event | list[Event]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._end))]
        if i < 0:
            i += self._end
        if not 0 <= i < self._end:
            raise IndexError("prior index out of range")
        return self._decoded.event(i)

    def __iter__(self) -> Iterator[Event]:
        self._decoded._decode_back(0)  # then every event is in the decoded list
        return iter(self._decoded._suffix[:self._end])

    def __reversed__(self) -> Iterator[Event]:
        decoded, i = self._decoded, self._end
        while i > 0:  # a chunk at a time, newest first, straight from the decoded events' list
            decoded._decode_back(i - 1)
            suffix = decoded._suffix
            first = decoded.count - len(suffix)
            yield from suffix[i - 1 - first::-1]
            i = first

    def newest_since(self, since: dt.datetime) -> list[Event]:
        """`windows.within(self, since)`: the events at or after `since`, newest first, found by
        bisection on the packed times and sliced from the decoded list instead of walked."""
        decoded, end = self._decoded, self._end
        lo = decoded.since(since, end)
        if lo == end:
            return []
        decoded._decode_back(lo)
        first = decoded.count - len(decoded._suffix)
        return decoded._suffix[end - 1 - first:lo - first - 1 if lo > first else None:-1]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str | bytes):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Prior({list(self)!r})"

    def usual_amounts(self, since: dt.datetime, lookback: dt.timedelta) -> list[float] | None:
        return self._decoded.usual_amounts(since, lookback, self._end)


def usual_amounts(prior: Sequence[Event], since: dt.datetime, lookback: dt.timedelta) -> list[float] | None:
    """The sorted non-refund amounts of `prior` at or after `since` from a `Prior`'s kept window;
    None for any other sequence (the caller scans it) or when the kept window cannot say."""
    return prior.usual_amounts(since, lookback) if isinstance(prior, Prior) else None


def located_only_at(prior: Sequence[Event], since: dt.datetime, place: str) -> bool:
    """Whether every event of `prior` at or after `since` is at exactly `place`, answered from a `Prior`'s
    packed bytes without decoding them; False for any other sequence (the caller scans it) or when the
    bytes cannot say."""
    if type(prior) is not Prior:
        return False
    try:
        raw = place.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: never in the packed bytes, which the slow path reads
        return False
    decoded, end = prior._decoded, prior._end
    lo = decoded.since(since, end)
    # a user mostly stays in one place for hours, and then the fast-travel signal has nothing to measure. Only
    # the places are read: a damaged value whose ids in the window are not UTF-8 is not refused here, as
    # decoding them would refuse it (no place's bytes match such bytes)
    return lo >= end or (len(raw) <= 0xFFFF and decoded.appendable and located_at(decoded.blob, decoded.count, lo,
                                                                                   end, raw))


def count_since(prior: Sequence[Event], since: dt.datetime) -> int | None:
    """How many events of `prior` are at or after `since`, by bisection on a `Prior`'s packed times (nothing
    decoded); None for any other sequence."""
    if type(prior) is not Prior:
        return None
    decoded, end = prior._decoded, prior._end
    return end - decoded.since(since, end)


def newest_since(prior: Prior, since: dt.datetime) -> list[Event]:
    """`within(prior, since)` (src/txnmon/core/rules/windows.py), found by bisection on the packed times
    instead of walking the generator, which cost a slice copy of everything decoded per window (issue 29)."""
    return prior.newest_since(since)
