"""When to try a delivery again and how fast a destination may be sent to: backoff with jitter, an
HTTP Retry-After, which answers are final, and the shared rate limit (GCRA). Pure: times come in."""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime


def backoff_delay(attempts: int, *, base: float, cap: float, jitter: float) -> float:
    """Seconds before the next try after `attempts` failed ones: exponential, capped, with "equal
    jitter" (`jitter` in [0, 1), from the caller's random source): half the step fixed, half random,
    so workers that failed together do not come back together, and no retry is sooner than half."""
    if attempts < 1:
        return 0.0
    step = min(cap, base * 2 ** min(attempts - 1, 60))
    return step / 2 + step / 2 * min(max(jitter, 0.0), 1.0)


MAX_RETRY_AFTER_S = 3600.0  # a receiver may ask for a pause, not park an entry for years


def retry_after_seconds(value: str | None, *, now: dt.datetime) -> float | None:
    """An HTTP Retry-After header (seconds or an HTTP date) as seconds from `now`, at most an hour;
    None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_S)


def is_permanent(status: int) -> bool:
    """An HTTP answer that no retry will change: a 4xx other than timeout, conflict-in-progress, too early
    and too many requests. Such an entry is dead-lettered at once, with the answer."""
    return 400 <= status < 500 and status not in (408, 409, 425, 429)


def rate_slot(tat: float | None, now: float, rate: float, burst: float) -> tuple[float | None, float]:
    """The generic cell rate algorithm: `rate` sends per second on average, bursts of up to `burst`.

    `tat` is the destination's theoretical arrival time (epoch seconds; None: never sent). Returns
    (the new tat, 0) when a send may go now, or (None, seconds to wait) when not. One number per
    destination is the whole state, so workers can share it in one document (NOTIFY_RATES)."""
    interval = 1.0 / rate
    # a tat is never more than a burst ahead of the clock unless a clock was wrong (a worker's ran fast,
    # or stepped back): capped, so that costs at most one interval, not the size of the error
    start = now if tat is None or tat < now else min(tat, now + max(burst, 1.0) * interval)
    wait = start - now - (max(burst, 1.0) - 1.0) * interval
    if wait > 1e-9:
        return None, wait
    return start + interval, 0.0
