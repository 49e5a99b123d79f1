"""The business-signals job: decide payment-health alerts and trends on the closed 5-minute buckets.

A run (the `signals` task of the kpi_rollups DAG, after the rollup; or `txnmon signals`)

1. takes the `business_signals` lease (one walk at a time),
2. finds how far event time is closed: the newest successful rollup run's `event_watermark` (the
   processor's slowest partition when that run started, so every batch behind it is rolled up)
   minus SIGNAL_LATENESS_MINUTES,
3. reads `signal_state` (where the last walk stopped) and the kpi_signals_5min buckets from the
   baselines' start up to that point, and walks them (src/txnmon/core/business_signals.py),
4. writes the episodes it opened, updated or cleared to `ops_alerts` (payment failure spikes,
   apart from the fraud `alerts`) and `trends`, by `_id`,
5. saves the new state.

A crash between 4 and 5 re-walks the same buckets from the same state: the same `_id`s get the same
documents. Buckets are walked once, in event time, so the replay speed and the run schedule change
nothing; data that arrives after its bucket was decided is in the kpi_* rollups but not in a signal.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from txnmon.adapters.mongo import LeasesRepository, MongoStore
from txnmon.core.business_signals import (
    BUCKET,
    PAYMENT_SPIKE,
    SignalConfig,
    SignalState,
    bucket_start,
    buckets_from_documents,
    evaluate,
)
from txnmon.core.collection_names import OPS_ALERTS, SIGNAL_STATE, TRENDS
from txnmon.errors import RetryableError
from txnmon.jobs.rollups import latest_run
from txnmon.settings import Settings

__all__ = ["SignalRun", "SignalsBusy", "run_signals", "signal_config", "signals_task"]

log = logging.getLogger("txnmon.jobs")

LEASE = "business_signals"
LEASE_FOR = dt.timedelta(minutes=10)
STATE_ID = "business_signals"
SIGNAL_BUCKETS = "kpi_signals_5min"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SignalsBusy(RetryableError):
    """Another signals run holds the lease."""


@dataclass(frozen=True)
class SignalRun:
    closed_until: dt.datetime | None  # buckets before this are decided
    evaluated: int  # buckets walked this run
    opened: list[dict[str, Any]]
    cleared: list[dict[str, Any]]
    open_now: int  # episodes still open after the run


def signal_config(settings: Settings) -> SignalConfig:
    return SignalConfig(
        payment_baseline_buckets=settings.payment_spike_baseline_buckets,
        payment_factor=settings.payment_spike_factor, payment_min_increase=settings.payment_spike_min_increase,
        payment_min_transactions=settings.payment_spike_min_transactions,
        payment_min_failed_users=settings.payment_spike_min_failed_users,
        trend_window_buckets=settings.trend_window_buckets, trend_baseline_buckets=settings.trend_baseline_buckets,
        trend_factor=settings.trend_factor, trend_min_sales=settings.trend_min_sales,
        new_region_min_sales=settings.new_region_min_sales)


def closed_until(store: MongoStore, lateness: dt.timedelta) -> dt.datetime | None:
    """The end of the last closed bucket: buckets ending at or before it are decided."""
    run = latest_run(store)
    mark = (run or {}).get("event_watermark")
    if mark is None:
        return None
    if mark.tzinfo is None:
        mark = mark.replace(tzinfo=dt.UTC)
    return bucket_start(mark - lateness)


def run_signals(store: MongoStore, settings: Settings, *, clock: Callable[[], dt.datetime] = _utcnow,
                trigger: str = "manual") -> SignalRun:
    config = signal_config(settings)
    owner = f"{trigger}-{uuid.uuid4().hex[:12]}"
    now = clock()
    if not LeasesRepository(store).acquire(LEASE, owner, now, now + LEASE_FOR):
        raise SignalsBusy("another business-signals run is in progress (retry later)", retry_after=30.0)
    try:
        return _run(store, settings, config, clock)
    finally:
        LeasesRepository(store).release(LEASE, owner)


def _run(store: MongoStore, settings: Settings, config: SignalConfig,
         clock: Callable[[], dt.datetime]) -> SignalRun:
    until = closed_until(store, dt.timedelta(minutes=settings.signal_lateness_minutes))
    state_doc = store.find_one(SIGNAL_STATE, {"_id": STATE_ID})
    state = SignalState.from_document(state_doc)
    if until is None or (state.next_bucket is not None and state.next_bucket >= until):
        return SignalRun(until, 0, [], [], len(state.open))
    query: dict[str, Any] = {"bucket": {"$lt": until}}
    if state.next_bucket is not None:
        query["bucket"]["$gte"] = state.next_bucket - BUCKET * config.history_buckets
    buckets = buckets_from_documents(store.find(SIGNAL_BUCKETS, query))
    result = evaluate(state, buckets, until, config)
    payment = [e for e in result.changed if e["kind"] == PAYMENT_SPIKE]
    trends = [e for e in result.changed if e["kind"] != PAYMENT_SPIKE]
    if payment:
        store.write_documents(OPS_ALERTS, payment)
    if trends:
        store.write_documents(TRENDS, trends)
    store.replace_document(SIGNAL_STATE, {"_id": STATE_ID, **result.state.to_document(),
                                          "closed_until": until, "updated_at": clock()})
    opened = [e for e in result.changed if e["status"] == "open" and e["buckets"] == 1]
    cleared = [e for e in result.changed if e["status"] == "cleared"]
    for e in opened:
        log.warning("signal opened: %s", e["reason"])
    for e in cleared:
        log.info("signal cleared: %s (%s) at %s", e["kind"], e["key"], e["cleared_at"])
    return SignalRun(until, result.evaluated, opened, cleared, len(result.state.open))


def summary(run: SignalRun) -> dict[str, Any]:
    return {"closed_until": run.closed_until.isoformat() if run.closed_until else None,
            "buckets_evaluated": run.evaluated, "opened": [e["_id"] for e in run.opened],
            "cleared": [e["_id"] for e in run.cleared], "open_now": run.open_now}


def signals_task(settings: Settings, trigger: str = "airflow") -> dict[str, Any]:
    """The kpi_rollups DAG's `signals` task."""
    return summary(run_signals(MongoStore(settings), settings, trigger=trigger))
