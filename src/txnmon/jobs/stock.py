"""The stock job: levels, depletion alerts and stock-outs per product and location, in closed event time.

A run (`txnmon events` after each stored batch, or `txnmon stock run`)

1. takes the `stock` lease (one walk at a time),
2. reads `stock_state` (where the last walk stopped, each key's level, recent sales, open episodes),
3. walks, a day of event time at a time up to `closed_until`, the stored stock events and the
   successful purchases of `transactions` with `walked_until <= event_time < closed_until`
   (src/txnmon/core/stock.py),
4. writes what changed by `_id`: the episodes to `ops_alerts` (kinds `stock_depletion`, `stock_out`),
   the episodes opened into the notifications outbox (insert-if-absent, `<alert _id>|<destination>`),
   the closed hours to `kpi_stock_hour`, every key's level to `stock_levels` (with the open
   `trending_product` trend of its product, if any),
5. saves the state, last.

A crash between 4 and 5 re-walks the same events from the same state: the same `_id`s get the same
documents. Events are walked once, in event time: the replay speed, the batch sizes and how often the
job runs change nothing; an event stored after its time was walked is not taken into account.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from txnmon.adapters.mongo import MongoStore
from txnmon.core.business_signals import TRENDING_PRODUCT
from txnmon.core.collection_names import (
    KPI_STOCK_HOUR,
    OPS_ALERTS,
    STOCK_EVENTS,
    STOCK_LEVELS,
    STOCK_STATE,
    TRANSACTIONS,
    TRENDS,
)
from txnmon.core.stock import (
    Movement,
    StockConfig,
    StockState,
    sale_movement,
    stock_movement,
    walk,
)
from txnmon.errors import RetryableError
from txnmon.jobs.rollups import latest_run
from txnmon.jobs.walk_lease import WalkLease, utcnow
from txnmon.notifications import outbox
from txnmon.notifications import routes as routing
from txnmon.settings import Settings

__all__ = ["StockBusy", "StockRun", "default_closed_until", "run_stock", "stock_config"]

log = logging.getLogger("txnmon.jobs")

LEASE = "stock"
STATE_ID = "stock"
STEP = dt.timedelta(days=1)  # event time walked per read: bounds what one read holds in memory
SALE_FIELDS = {"event_time": 1, "product": 1, "location": 1, "quantity": 1, "status": 1, "type": 1}
DEFAULT_LATENESS = dt.timedelta(minutes=5)


class StockBusy(RetryableError):
    """Another stock run holds the lease."""


@dataclass(frozen=True)
class StockRun:
    closed_until: dt.datetime | None  # events before this are walked
    walked: int  # events walked this run
    opened: list[dict[str, Any]]  # depletion alerts and stock-outs opened this run
    cleared: list[dict[str, Any]]
    hours: int  # kpi_stock_hour rows written
    levels: int  # stock_levels documents written
    open_now: int  # depletion alerts open after the run


def stock_config(settings: Settings) -> StockConfig:
    return StockConfig(rate_window=dt.timedelta(minutes=settings.stock_rate_window_minutes),
                       lead_time=dt.timedelta(minutes=settings.stock_lead_time_minutes),
                       margin=dt.timedelta(minutes=settings.stock_alert_margin_minutes))


def default_closed_until(store: MongoStore, lateness: dt.timedelta = DEFAULT_LATENESS) -> dt.datetime | None:
    """For a run by hand: the processor's slowest watermark at the newest rollup run, minus `lateness`."""
    mark = (latest_run(store) or {}).get("event_watermark")
    if mark is None:
        return None
    return (mark if mark.tzinfo else mark.replace(tzinfo=dt.UTC)) - lateness


def run_stock(store: MongoStore, settings: Settings, *, closed_until: dt.datetime,
              clock: Callable[[], dt.datetime] = utcnow, trigger: str = "events",
              routes: routing.Routes | None = None) -> StockRun:
    """Walk stock events and sales up to `closed_until` (aware), write levels, alerts and hourly KPIs,
    and queue a notification per alert opened under `routes` (default: NOTIFY_ROUTES_FILE)."""
    with WalkLease(store, LEASE, trigger, StockBusy, clock) as lease:
        if routes is None:
            # read before anything is walked: a bad routes file fails the run, and the next run walks the
            # same events, so no alert is decided without its notification
            routes = outbox.load_routes(settings.notify_routes_file, settings.notify_allowed_host_list)
        until = closed_until.astimezone(dt.UTC)
        # MongoDB keeps milliseconds: the saved `walked_until` and the reads' bounds are cut to them, so the
        # walk is cut the same way (an event in the cut-off microseconds is walked once, in the next run)
        until = until.replace(microsecond=until.microsecond // 1000 * 1000)
        return _run(store, stock_config(settings), until, clock, routes, lease.hold)


def _start(store: MongoStore, config: StockConfig) -> dt.datetime | None:
    """Where a first walk starts: a rate window before the first stock event (the sales before a key's
    first count only feed its rate)."""
    first = store.find(STOCK_EVENTS, {}, sort=[("event_time", 1)], limit=1, projection={"event_time": 1})
    if not first:
        return None
    at = first[0]["event_time"]
    return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)) - config.rate_window


def _movements(store: MongoStore, start: dt.datetime, end: dt.datetime) -> list[Movement]:
    span = {"event_time": {"$gte": start, "$lt": end}}
    moves = [stock_movement(d) for d in store.find(STOCK_EVENTS, span)]
    sales = store.find(TRANSACTIONS, {**span, "status": {"$ne": "failed"}, "type": {"$ne": "refund"}},
                       projection=SALE_FIELDS)
    moves += [m for m in map(sale_movement, sales) if m is not None]
    return moves


def _run(store: MongoStore, config: StockConfig, until: dt.datetime,
         clock: Callable[[], dt.datetime], routes: routing.Routes, hold: Callable[[], None]) -> StockRun:
    state = StockState.from_document(store.find_one(STOCK_STATE, {"_id": STATE_ID}))
    if state.walked_until is None:
        state.walked_until = _start(store, config)
    if state.walked_until is None or state.walked_until >= until:
        return StockRun(until, 0, [], [], 0, 0, sum(k.depletion is not None for k in state.keys.values()))
    walked, opened, cleared, hours, levels, steps = 0, [], [], 0, 0, 0
    while state.walked_until is not None and state.walked_until < until:
        if steps:
            hold()  # renewed before each later step; stops the walk if another run took the lease
        steps += 1
        step_end = min(state.walked_until + STEP, until)
        result = walk(state, _movements(store, state.walked_until, step_end), step_end, config)
        raised = set(result.opened)
        new = [a for a in result.alerts if a["_id"] in raised]
        if result.alerts:
            store.write_documents(OPS_ALERTS, result.alerts)
        if new:
            # before the state: a crash re-walks this step and queues the same ids, kept once. The event
            # holds only the figures at opening (this may be the episode's later version: stocked out)
            outbox.enqueue_events(store, routes, [routing.ops_alert_event(a) for a in new], now=clock())
        if result.hours:
            store.write_documents(KPI_STOCK_HOUR, result.hours)
        if step_end == until:  # the levels as of the run's end only
            docs = _with_trends(store, result.levels)
            if docs:
                store.write_documents(STOCK_LEVELS, docs)
            levels = len(docs)
        store.replace_document(STOCK_STATE, {"_id": STATE_ID, **result.state.to_document(),
                                             "updated_at": clock()})
        state = result.state
        walked += result.walked
        hours += len(result.hours)
        opened += [a for a in new if a["status"] == "open"]
        cleared += [a for a in result.alerts if a["status"] == "cleared"]
    for a in opened:
        log.warning("stock: %s", a["reason"])
    open_now = sum(k.depletion is not None for k in state.keys.values())
    return StockRun(until, walked, opened, cleared, hours, levels, open_now)


def _with_trends(store: MongoStore, levels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each level with `trending`: the open trending_product trend of its product (the business-signals
    job decides trends on its own schedule, so the level, a current view, carries it; alerts do not)."""
    if not levels:
        return []
    open_trends = store.find(TRENDS, {"kind": TRENDING_PRODUCT, "status": "open"}, projection={"product": 1})
    trending = {t.get("product"): t["_id"] for t in open_trends}
    return [{**doc, "trending": trending.get(doc["product"])} for doc in levels]


def summary(run: StockRun) -> dict[str, Any]:
    return {"closed_until": run.closed_until.isoformat() if run.closed_until else None,
            "events_walked": run.walked, "opened": [a["_id"] for a in run.opened],
            "cleared": [a["_id"] for a in run.cleared], "hours": run.hours, "levels": run.levels,
            "depletion_open": run.open_now}
