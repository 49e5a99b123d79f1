"""The cart-abandonment job: decide abandoned carts, recoveries and interventions on closed event time.

A run (`txnmon abandonment run`, or the `txnmon events` service after each stored batch)

1. takes the `abandonment` lease (one walk at a time),
2. reads `abandonment_state`: event time before `decided_until` is decided,
then walks [decided_until, closed_until) in steps of at most a day of event time (a quiet stretch
crossed at once), each of which
3. reads the cart events of the carts whose deadline (end + ABANDON_TIMEOUT_MINUTES) may fall in
   [decided_until, closed_until), their users' purchases, and the abandoned carts whose recovery is due,
4. writes, by deterministic `_id`: `cart_outcomes` and `abandoned_carts` (the cart's key),
   `interventions` (`<trigger>:<cart key>`), the interventions' outbox entries (insert-if-absent,
   `<intervention>|<destination>`), and `kpi_abandonment_hour` recomputed for every hour touched,
5. saves the new state, and renews the lease before the next step. Id lists go to MongoDB
   IN_CHUNK at a time (a command is limited to 16 MB).

A crash between 4 and 5 re-walks the same range from the same state: the same `_id`s get the same
documents and the outbox keeps its first entry. Decisions depend only on events before `closed_until`
(src/txnmon/core/abandonment.py), so the replay speed and the step sizes change nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from txnmon.adapters.mongo import MongoStore
from txnmon.core import abandonment as core
from txnmon.core.collection_names import (
    ABANDONED_CARTS,
    ABANDONMENT_HOUR,
    ABANDONMENT_STATE,
    CART_EVENTS,
    CART_OUTCOMES,
    INTERVENTIONS,
    TRANSACTIONS,
)
from txnmon.errors import RetryableError
from txnmon.jobs.walk_lease import WalkLease, utcnow
from txnmon.notifications import outbox
from txnmon.notifications import routes as routing
from txnmon.settings import Settings

__all__ = ["AbandonmentBusy", "AbandonmentRun", "abandon_config", "closed_bound", "run_abandonment", "summary"]

log = logging.getLogger("txnmon.jobs")

LEASE = "abandonment"
STATE_ID = "abandonment"
STEP = dt.timedelta(days=1)  # event time decided per step: bounds memory, and the lease is renewed per step
IN_CHUNK = 5_000  # ids per $in list: a command stays far below MongoDB's 16 MB limit
TX_FIELDS = {"user_id": 1, "event_time": 1, "status": 1, "type": 1, "product": 1, "payment_method": 1}


class AbandonmentBusy(RetryableError):
    """Another abandonment run holds the lease."""


@dataclass(frozen=True)
class AbandonmentRun:
    closed_until: dt.datetime  # carts whose deadline is before this are decided
    decided: int  # carts decided this run
    abandoned: int  # ... of which abandoned
    recoveries: int  # abandoned carts whose recovery was decided this run
    interventions: list[str]  # ids of the interventions this run raised


def abandon_config(settings: Settings) -> core.AbandonConfig:
    return core.AbandonConfig(timeout=dt.timedelta(minutes=settings.abandon_timeout_minutes),
                              repeat_count=settings.abandon_repeat_count,
                              repeat_window=dt.timedelta(hours=settings.abandon_repeat_hours),
                              after_failed=dt.timedelta(minutes=settings.abandon_after_failed_minutes))


def run_abandonment(store: MongoStore, settings: Settings, *, closed_until: dt.datetime,
                    clock: Callable[[], dt.datetime] = utcnow, trigger: str = "manual",
                    routes: routing.Routes | None = None) -> AbandonmentRun:
    """Decide every cart whose deadline is before `closed_until` (and the wall clock) and not decided yet
    (see the module). A naive `closed_until` is UTC, as on the command line."""
    with WalkLease(store, LEASE, trigger, AbandonmentBusy, clock) as lease:
        if routes is None:
            routes = outbox.load_routes(settings.notify_routes_file, settings.notify_allowed_host_list)
        # never past the wall clock: the contracts accept event times up to a day ahead, and a cart
        # decided before its events arrive would be abandoned wrongly and decided_until moved on for good
        until = closed_bound(closed_until, clock())
        return _run(store, abandon_config(settings), until, clock, routes, lease.hold)


def closed_bound(closed_until: dt.datetime, now: dt.datetime) -> dt.datetime:
    """The event time a run may decide up to: `closed_until` (naive read as UTC, not local time), capped
    at the wall clock `now`."""
    until = closed_until.replace(tzinfo=dt.UTC) if closed_until.tzinfo is None else closed_until
    return min(until.astimezone(dt.UTC), now.astimezone(dt.UTC))


def _since(field: str, start: dt.datetime | None, until: dt.datetime) -> dict[str, Any]:
    return {field: {"$lt": until} if start is None else {"$gte": start, "$lt": until}}


def _find_in(store: MongoStore, collection: str, field: str, ids: Iterable[str], query: dict[str, Any],
             projection: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """`find` with `field` in `ids`, IN_CHUNK ids per command."""
    ordered = sorted(set(ids))
    out: list[dict[str, Any]] = []
    for i in range(0, len(ordered), IN_CHUNK):
        out += store.find(collection, {field: {"$in": ordered[i:i + IN_CHUNK]}, **query}, projection=projection)
    return out


def _carts(store: MongoStore, config: core.AbandonConfig, start: dt.datetime | None,
           until: dt.datetime) -> dict[str, core.Cart]:
    """The carts whose deadline may fall in [start, until): those with an event (their end) in
    [start - timeout, until - timeout), each with all its events before `until`."""
    recent = store.find(CART_EVENTS, _since("event_time", start and start - config.timeout, until - config.timeout),
                        projection={"cart_id": 1, "session_id": 1})
    cart_ids = {e["cart_id"] for e in recent if e.get("cart_id")}
    sessions = {e["session_id"] for e in recent if not e.get("cart_id")}
    before = {"event_time": {"$lt": until}}
    events = _find_in(store, CART_EVENTS, "cart_id", cart_ids, before)
    events += _find_in(store, CART_EVENTS, "session_id", sessions, {"cart_id": {"$exists": False}, **before})
    return core.build_carts(events, config.timeout) if events else {}


def _purchases(store: MongoStore, users: set[str], since: dt.datetime, until: dt.datetime) -> list[dict[str, Any]]:
    return _find_in(store, TRANSACTIONS, "user_id", users, {"event_time": {"$gte": since, "$lt": until}},
                    projection=TX_FIELDS)


def _step_end(store: MongoStore, config: core.AbandonConfig, start: dt.datetime | None,
              until: dt.datetime) -> dt.datetime:
    """Where the step from `start` ends: STEP of event time past the first deadline or recovery that
    can fall at or after `start` (a quiet stretch is crossed at once), never past `until`."""
    events = store.find(CART_EVENTS, {} if start is None else {"event_time": {"$gte": start - config.timeout}},
                        sort=[("event_time", 1)], limit=1, projection={"event_time": 1})
    due = store.find(ABANDONED_CARTS, {} if start is None else {"recovery_due": {"$gte": start}},
                     sort=[("recovery_due", 1)], limit=1, projection={"recovery_due": 1})
    first = [e["event_time"] + config.timeout for e in events] + [d["recovery_due"] for d in due]
    if not first:
        return until
    return min(until, max([min(first)] + ([start] if start is not None else [])) + STEP)


def _run(store: MongoStore, config: core.AbandonConfig, until: dt.datetime, clock: Callable[[], dt.datetime],
         routes: routing.Routes, hold: Callable[[], None]) -> AbandonmentRun:
    """Walk [decided_until, until) in steps, saving the state and renewing the lease after each."""
    state = store.find_one(ABANDONMENT_STATE, {"_id": STATE_ID}) or {}
    start = state.get("decided_until")
    decided = abandoned = recoveries = 0
    raised: list[str] = []
    steps = 0
    while start is None or start < until:
        if steps:
            hold()
        stop = _step_end(store, config, start, until)
        d, a, r, ids = _step(store, config, start, stop, clock, routes)
        decided, abandoned, recoveries, raised = decided + d, abandoned + a, recoveries + r, raised + ids
        start, steps = stop, steps + 1
    return AbandonmentRun(until, decided, abandoned, recoveries, raised)


def _step(store: MongoStore, config: core.AbandonConfig, start: dt.datetime | None, until: dt.datetime,
          clock: Callable[[], dt.datetime], routes: routing.Routes) -> tuple[int, int, int, list[str]]:
    """Decide [start, until) and save `until` as decided_until, last: (decided, abandoned, recoveries,
    intervention ids)."""
    carts = _carts(store, config, start, until)
    lookback = max(core.PAYMENT_LOOKBACK, config.after_failed)
    first = min((c.first for c in carts.values()), default=until)
    txs = _purchases(store, {c.user_id for c in carts.values()}, first - lookback, until)
    decided = core.decide_carts(carts.values(), txs, config, start=start, until=until)
    if start is not None and decided:
        # a cart decided by an earlier step (stored deadline before `start`) stays decided: an event of it
        # stored late would move its end and decide it again, leaving a stale abandoned_carts document and
        # a recovery pass writing `abandoned` back. Outcomes with a deadline in this step are a crashed
        # walk's of the same range: decided again, to the same documents.
        earlier = {d["_id"] for d in _find_in(store, CART_OUTCOMES, "_id", [d["_id"] for d in decided],
                                              {"deadline": {"$lt": start}}, projection={"_id": 1})}
        decided = [d for d in decided if d["_id"] not in earlier]

    # recoveries due in [start, until): abandoned before this step (stored) or in it
    due = {d["_id"]: d for d in store.find(ABANDONED_CARTS, _since("recovery_due", start, until))}
    due.update({d["_id"]: d for d in decided if d["outcome"] == core.ABANDONED and d["recovery_due"] < until})
    if due:
        since = min(d["last_event_time"] for d in due.values())
        bought = _purchases(store, {d["user_id"] for d in due.values()}, since, until)
        due = {k: core.decide_recovery(d, bought, until) for k, d in due.items()}
    changed = {**{d["_id"]: d for d in decided}, **due}

    abandoned = [d for d in decided if d["outcome"] == core.ABANDONED]
    history: list[dict[str, Any]] = []
    if abandoned:
        history = _find_in(store, ABANDONED_CARTS, "user_id", {d["user_id"] for d in abandoned},
                           {"deadline": {"$gt": abandoned[0]["deadline"] - config.repeat_window, "$lt": until}})
    raised = core.interventions(abandoned, history, config)

    if changed:
        store.write_documents(CART_OUTCOMES, list(changed.values()))
        store.write_documents(ABANDONED_CARTS, [d for d in changed.values() if d["outcome"] == core.ABANDONED])
    if raised:
        store.write_documents(INTERVENTIONS, raised)
        outbox.enqueue_events(store, routes, [routing.intervention_event(i) for i in raised], now=clock())
    hours = sorted({d["hour"] for d in changed.values()})
    if hours:
        _recompute_hours(store, hours)
    store.replace_document(ABANDONMENT_STATE, {"_id": STATE_ID, "decided_until": until, "updated_at": clock()})
    for i in raised:
        log.info("intervention %s for user %s", i["_id"], i["user_id"])
    return len(decided), len(abandoned), len(due), [i["_id"] for i in raised]


def _recompute_hours(store: MongoStore, hours: list[dt.datetime]) -> None:
    """`kpi_abandonment_hour` of these hours from every decided cart of them: a re-walk writes the same."""
    rows = core.kpi_rows(store.find(CART_OUTCOMES, {"hour": {"$in": hours}},
                                    projection={"hour": 1, "products": 1, "payment_method": 1, "outcome": 1,
                                                "recovered": 1}))
    stale = {d["_id"] for d in store.find(ABANDONMENT_HOUR, {"hour": {"$in": hours}}, projection={"_id": 1})}
    store.write_documents(ABANDONMENT_HOUR, rows, delete_ids=sorted(stale - {r["_id"] for r in rows}))


def summary(run: AbandonmentRun) -> dict[str, Any]:
    return {"closed_until": run.closed_until.isoformat(), "decided": run.decided, "abandoned": run.abandoned,
            "recoveries": run.recoveries, "interventions": run.interventions}
