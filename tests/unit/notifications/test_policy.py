"""Backoff, Retry-After, final answers and the shared rate limit."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.notifications.samples import T0
from txnmon.notifications import policy


@given(st.integers(1, 40), st.floats(0, 1))
def test_backoff_doubles_up_to_the_cap_and_jitter_stays_within_half_a_step(attempts, jitter):
    delay = policy.backoff_delay(attempts, base=2.0, cap=600.0, jitter=jitter)
    step = min(600.0, 2.0 * 2 ** (attempts - 1))
    assert step / 2 <= delay <= step
    assert policy.backoff_delay(attempts + 1, base=2.0, cap=600.0, jitter=jitter) >= delay


def test_the_rate_limit_allows_a_burst_then_the_rate():
    slot = functools.partial(policy.rate_slot, rate=2.0, burst=2)
    tat, wait = slot(None, 100.0)  # never sent: go
    assert (tat, wait) == (100.5, 0.0)
    tat, wait = slot(tat, 100.0)  # the burst's second send
    assert (tat, wait) == (101.0, 0.0)
    assert slot(tat, 100.0) == (None, pytest.approx(0.5))  # then one every 0.5 s
    assert slot(tat, 100.5) == (101.5, 0.0)
    assert slot(50.0, 100.0) == (100.5, 0.0)  # a quiet spell gives the burst back, never more
    # a tat far ahead (a worker's clock ran fast, or this one stepped back) costs one interval, not the error
    assert slot(100.0 + 3600, 100.0) == (None, pytest.approx(0.5))


@given(st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=60), st.floats(0.5, 50), st.integers(1, 5))
def test_no_window_sees_more_than_the_burst_plus_the_rate(gaps, rate, burst):
    """However sends are attempted, the ones allowed in any span T are at most burst + T x rate."""
    tat, now, sent = None, 1000.0, []
    for gap in gaps:
        now += gap / 10
        new, _wait = policy.rate_slot(tat, now, rate, burst)
        if new is not None:
            tat = new
            sent.append(now)
    for i, first in enumerate(sent):
        for j in range(i, len(sent)):
            assert j - i + 1 <= burst + (sent[j] - first) * rate + 1e-6


def test_retry_after_and_permanence_of_http_answers():
    assert policy.retry_after_seconds("30", now=T0) == 30.0
    assert policy.retry_after_seconds("Wed, 01 Oct 2025 12:00:10 GMT", now=T0) == 10.0
    assert policy.retry_after_seconds("later", now=T0) is None
    # a receiver may ask for a pause, not park an entry for years (or overflow the next attempt's time)
    assert policy.retry_after_seconds("999999999999", now=T0) == policy.MAX_RETRY_AFTER_S == 3600.0
    assert policy.retry_after_seconds("Fri, 01 Oct 5195 12:00:00 GMT", now=T0) == 3600.0
    assert [s for s in (400, 401, 404, 408, 409, 425, 429, 500, 503) if policy.is_permanent(s)] == [400, 401, 404]
