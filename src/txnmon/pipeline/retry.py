"""Retrying a write through an outage: only `RetryableError` is retried, and never given up on.

An outage must not commit past unwritten data, so the loop backs off (0.5 s .. 10 s, or what the
error asks for) until the write succeeds; a stop requested meanwhile raises StopRequested and the
batch stays uncommitted, to be redelivered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from txnmon.errors import RetryableError, StopRequested

log = logging.getLogger("txnmon.stream")
T = TypeVar("T")

MAX_BACKOFF_S = 10.0


def with_retry(
    action: Callable[[], T],
    *,
    sink: str,
    should_stop: Callable[[], bool],
    on_retry: Callable[[str], None] = lambda _: None,
) -> T:
    """Run `action` until it succeeds, backing off 0.5 s .. 10 s; only outages are retried.

    Never gives up on its own: an outage must not commit past unwritten data. A stop request
    while it keeps failing raises StopRequested (the batch stays uncommitted and is redelivered).
    """
    delay = 0.5
    attempt = 1
    while True:
        try:
            return action()
        except RetryableError as exc:
            on_retry(sink)
            if should_stop():
                raise StopRequested(f"{sink} still failing at shutdown: {exc}") from exc
            delay = max(delay, exc.retry_after)
            log.warning("%s unavailable (attempt %d): %s; retrying the batch in %.1fs",
                        sink, attempt, str(exc).split("\n")[0][:300], delay,
                        extra={"sink": sink, "attempt": attempt})
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
            attempt += 1
