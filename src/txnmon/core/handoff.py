"""Parse once: transactions validated on the raw topic, handed to the judging of their by-user copies.

A member validates a raw message when it routes it (`route_batch`) and forwards the very bytes it
validated to the by-user topic; a batch or two later, usually on the same member, the copy comes back
to be judged (`process_batch`), which used to decode and validate it again (a third of the hot path's
CPU, issue 29). `Handoff` keeps what routing found, keyed by those bytes, and gives it back once.

Why this is safe whoever wrote the by-user record: nothing about the by-user topic is trusted. A
record there may come from another member, another txnmon version (with another contract), a
re-drive or a hand-made `kafka-console-producer` line: the topic only promises that its records were
committed, not who made them or by which rules. So a record is never taken as valid because of where
it is; it skips the parse only when this very process validated exactly these bytes with the same
zone and size limit. The contract (src/txnmon/core/contract.py) is a pure function of the bytes, the
zone, the size limit and `now`, and `now` is only read by the "more than a day ahead" check, which a
later `now` can only pass more easily: so an entry is used only when judging's `now` is not earlier
than routing's (a wall clock stepped back parses again). A copy not found here (another member routed
it, the entry was let go, the process restarted) is parsed in full, as before: the result is the same
either way, only the cost differs.

Each entry is given out once (a dict handed to two records could be shared by two documents), and at
most `max_entries` are kept, holding at most `max_kept_bytes` of raw bytes, the oldest let go first:
copies routed to partitions another member judges are never asked for. The count alone did not bound
memory: a record may be up to the size limit (64 KB by default), so 20,000 of them could hold 1.3 GB.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from typing import Any
from zoneinfo import ZoneInfo

from txnmon.core.contract import parse_transaction
from txnmon.core.records import Rejection

__all__ = ["DEFAULT_MAX_ENTRIES", "DEFAULT_MAX_KEPT_BYTES", "Handoff", "parse"]

DEFAULT_MAX_ENTRIES = 20_000  # ten default batches of routed records
# The raw bytes kept, summed. The parsed dicts come on top (Python objects: a small multiple of the raw
# size, not measured here); a typical record is well under 1 KB, so the count is what binds normally and
# this budget only when records are large.
DEFAULT_MAX_KEPT_BYTES = 64 * 1024 * 1024


class Handoff:
    """Validated transactions by the exact bytes they were parsed from, each given out once."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_kept_bytes: int = DEFAULT_MAX_KEPT_BYTES) -> None:
        self.max_entries = max_entries
        self.max_kept_bytes = max_kept_bytes
        # an OrderedDict, not a dict: letting the oldest go from a dict (`next(iter(d))`, then `del`) walks over
        # the slots of every entry let go before it until the dict is next resized, O(n) each; in e2e, where
        # routing runs ahead of judging and entries are let go all the time, that was 5% of the processor's
        # CPU (py-spy, session 20). `popitem(last=False)` is O(1).
        self._kept: OrderedDict[bytes, tuple[ZoneInfo, int, dt.datetime, dict[str, Any]]] = OrderedDict()
        self.kept_bytes = 0  # sum of len(raw) over the entries kept
        self.hits = 0  # by-user records judged without a second parse
        self.misses = 0

    def __len__(self) -> int:
        return len(self._kept)

    def keep(self, raw: bytes, tx: dict[str, Any], *, zone: ZoneInfo, now: dt.datetime, max_bytes: int) -> None:
        """`tx` is what `parse_transaction(raw, zone=zone, now=now, max_bytes=max_bytes)` returned."""
        if self.max_entries <= 0 or len(raw) > self.max_kept_bytes:
            return
        kept = self._kept
        if kept.pop(raw, None) is not None:  # a copy of the same bytes: the newest position in the order
            self.kept_bytes -= len(raw)
        kept[raw] = (zone, max_bytes, now, tx)
        self.kept_bytes += len(raw)
        while len(kept) > self.max_entries or self.kept_bytes > self.max_kept_bytes:
            oldest, _ = kept.popitem(last=False)
            self.kept_bytes -= len(oldest)

    def take(self, raw: bytes, *, zone: ZoneInfo, now: dt.datetime, max_bytes: int) -> dict[str, Any] | None:
        """The transaction kept for exactly these bytes and this contract, if any (and no longer kept)."""
        found = self._kept.pop(raw, None)
        if found is None:
            self.misses += 1
            return None
        self.kept_bytes -= len(raw)
        kept_zone, kept_max, kept_now, tx = found
        if kept_zone != zone or kept_max != max_bytes or now < kept_now:
            self.misses += 1
            return None
        self.hits += 1
        return tx


def parse(raw: bytes, handoff: Handoff | None, *, zone: ZoneInfo, now: dt.datetime,
          max_bytes: int) -> dict[str, Any] | Rejection:
    """`parse_transaction`, or what routing found for these bytes in `handoff` (the same result)."""
    if handoff is not None:
        tx = handoff.take(raw, zone=zone, now=now, max_bytes=max_bytes)
        if tx is not None:
            return tx
    return parse_transaction(raw, zone=zone, now=now, max_bytes=max_bytes)
