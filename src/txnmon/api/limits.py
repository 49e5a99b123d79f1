"""The service's in-process memory: a token bucket per API key, the transaction ids it accepted
recently, and the answers it gave per `Idempotency-Key`. Pure: every time comes in as `now` (seconds).

One process's memory: behind several replicas a repeat may reach another one (the processor's own
re-send check, src/txnmon/core/resend.py, still judges a transaction once).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TokenBuckets:
    """`rate` requests a second per key, up to `burst` at once."""

    rate: float
    burst: int
    _state: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str, now: float) -> float:
        """0.0 when the request may go; else the seconds to wait before one may (Retry-After)."""
        with self._lock:
            tokens, at = self._state.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
            if tokens >= 1.0:
                self._state[key] = (tokens - 1.0, now)
                return 0.0
            self._state[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


def retry_after_header(wait: float) -> str:
    """Retry-After in whole seconds, never 0 (a client told 0 would retry at once)."""
    return str(max(1, math.ceil(wait)))


@dataclass
class RecentIds:
    """Transaction ids claimed within `window` seconds, at most `max_ids` (the oldest forgotten first)."""

    window: float
    max_ids: int
    _seen: OrderedDict[str, float] = field(default_factory=OrderedDict)
    _in_flight: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def claim(self, tx_id: str, now: float) -> bool | None:
        """True if `tx_id` is new (now claimed, in flight); False if it was sent (confirmed) within
        the window; None while another request's send of it is still in flight: that one may yet
        fail, so this copy is neither sent again nor called a duplicate."""
        with self._lock:
            oldest_kept = now - self.window
            while self._seen and (len(self._seen) >= self.max_ids or next(iter(self._seen.values())) < oldest_kept):
                gone, _ = self._seen.popitem(last=False)
                self._in_flight.discard(gone)
            if tx_id in self._seen:
                return None if tx_id in self._in_flight else False
            if self.max_ids > 0 and self.window > 0:
                self._seen[tx_id] = now
                self._in_flight.add(tx_id)
            return True

    def knows(self, tx_id: str, now: float) -> bool:
        """Whether `tx_id` was claimed here within the window (sent, or being sent)."""
        with self._lock:
            at = self._seen.get(tx_id)
            return at is not None and at >= now - self.window

    def confirm(self, tx_id: str) -> None:
        """Kafka acknowledged the claim's send: a later copy is a duplicate."""
        with self._lock:
            self._in_flight.discard(tx_id)

    def release(self, tx_id: str) -> None:
        """Forget a claim whose send failed, so the client's retry is not taken for a duplicate."""
        with self._lock:
            self._seen.pop(tx_id, None)
            self._in_flight.discard(tx_id)


@dataclass
class IdempotentAnswers:
    """The first answer given per (API key, Idempotency-Key), for `window` seconds, at most `max_keys`."""

    window: float
    max_keys: int = 100_000
    _answers: OrderedDict[tuple[str, str], tuple[float, int, Any]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: tuple[str, str], now: float) -> tuple[int, Any] | None:
        with self._lock:
            found = self._answers.get(key)
            if found is None or found[0] < now - self.window:
                return None
            return found[1], found[2]

    def put(self, key: tuple[str, str], status: int, body: Any, now: float) -> None:
        with self._lock:
            self._answers[key] = (now, status, body)
            # answers are kept in the order given: the expired ones are at the front
            while self._answers and (len(self._answers) > self.max_keys
                                     or next(iter(self._answers.values()))[0] < now - self.window):
                self._answers.popitem(last=False)
