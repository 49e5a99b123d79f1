"""The review-sentiment job: score each review once, roll sentiment up per hour and product, and raise
an ops alert when a product's recent reviews turn against it (src/txnmon/core/sentiment.py).

A run (`txnmon events` after each stored batch, or `txnmon sentiment run`), given `closed_until`
(reviews before it are all stored: the events service's closed event time),

1. takes the `sentiment` lease (one walk at a time),
2. reads `sentiment_state` (the first hour not decided yet; the open drop episodes),
3. per day of closed hours, in order: scores the reviews of those hours that have no score yet
   (`review_scores`, written with insert_missing: a score once stored never changes, even under another
   VADER version), sums them per hour and product, reads the earlier hours' sums back from
   `kpi_sentiment_hour` as far as the window and the baseline reach, and walks the hours,
4. writes the hours' `kpi_sentiment_hour` documents and the episodes opened, extended or cleared
   (`ops_alerts`, kind `sentiment_drop`), each by `_id`, and queues a notification per episode opened
   (insert-if-absent, `<alert _id>|<destination>`),
5. saves the new state, last.

A crash between 4 and 5 re-walks the same hours from the same state: the same `_id`s get the same
documents. Hours are decided once, in event time, so the replay speed, the batch sizes and how often
the job runs change nothing; a review that arrives after its hour was decided stays in `reviews`,
unscored, in no rollup and no alert (as late transactions stay out of the business signals).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from txnmon.adapters.mongo import MongoStore
from txnmon.adapters.sentiment import SCORER, score_text
from txnmon.core.collection_names import OPS_ALERTS, REVIEW_SCORES, REVIEWS, SENTIMENT_HOUR, SENTIMENT_STATE
from txnmon.core.sentiment import (
    HourStats,
    SentimentConfig,
    SentimentState,
    hour_start,
    hour_stats,
    score_document,
    walk,
)
from txnmon.errors import RetryableError
from txnmon.jobs.walk_lease import WalkLease, utcnow
from txnmon.notifications import outbox
from txnmon.notifications import routes as routing
from txnmon.settings import Settings

__all__ = ["SentimentBusy", "SentimentRun", "newest_review", "run_sentiment", "sentiment_config", "summary"]

log = logging.getLogger("txnmon.jobs")

LEASE = "sentiment"
STATE_ID = "sentiment"
STEP = dt.timedelta(days=1)  # hours walked per read: bounds memory on a first run over weeks of reviews
IN_CHUNK = 2_000  # reviews read and scored per $in list, with the lease renewed before each


class SentimentBusy(RetryableError):
    """Another sentiment run holds the lease."""


@dataclass(frozen=True)
class SentimentRun:
    decided_until: dt.datetime | None  # hours ending at or before this are decided (None: no review yet)
    hours: int  # hours walked this run
    scored: int  # reviews scored this run
    opened: list[dict[str, Any]]  # drop episodes opened this run (as they stand after it)
    cleared: list[dict[str, Any]]  # episodes cleared this run
    open_now: int  # episodes still open after the run


def sentiment_config(settings: Settings) -> SentimentConfig:
    return SentimentConfig(window_hours=settings.sentiment_window_hours,
                           baseline_hours=settings.sentiment_baseline_days * 24,
                           min_reviews=settings.sentiment_min_reviews, drop=settings.sentiment_drop)


def run_sentiment(store: MongoStore, settings: Settings, *, closed_until: dt.datetime,
                  clock: Callable[[], dt.datetime] = utcnow, trigger: str = "events",
                  routes: routing.Routes | None = None) -> SentimentRun:
    """Decide every hour that ends at or before `closed_until` (and the wall clock) and is not decided yet;
    queue a notification per drop opened under `routes` (default: NOTIFY_ROUTES_FILE)."""
    with WalkLease(store, LEASE, trigger, SentimentBusy, clock) as lease:
        if routes is None:
            # read before any hour is decided: a bad routes file fails the run before it decides a drop
            routes = outbox.load_routes(settings.notify_routes_file, settings.notify_allowed_host_list)
        # never past the wall clock: the contracts accept event times up to a day ahead, and an hour
        # decided before its reviews arrive would leave them out for good
        end = min(hour_start(closed_until), hour_start(clock()))
        return _run(store, sentiment_config(settings), end, clock, lease.hold, routes)


def newest_review(store: MongoStore) -> dt.datetime | None:
    """The newest stored review's event time: by hand, with no closed time given, what is stored counts
    as complete up to it (its own hour stays open)."""
    newest = store.find(REVIEWS, {}, sort=[("event_time", -1)], limit=1, projection={"event_time": 1})
    return newest[0]["event_time"] if newest else None


def _first_hour(store: MongoStore, end: dt.datetime) -> dt.datetime | None:
    first = store.find(REVIEWS, {"event_time": {"$lt": end}}, sort=[("event_time", 1)], limit=1,
                       projection={"event_time": 1})
    return hour_start(first[0]["event_time"]) if first else None


def _next_hour_with_reviews(store: MongoStore, start: dt.datetime, end: dt.datetime) -> dt.datetime:
    nxt = store.find(REVIEWS, {"event_time": {"$gte": start, "$lt": end}}, sort=[("event_time", 1)], limit=1,
                     projection={"event_time": 1})
    return max(start, hour_start(nxt[0]["event_time"])) if nxt else end


def _scores(store: MongoStore, start: dt.datetime, end: dt.datetime,
            hold: Callable[[], None]) -> tuple[list[dict[str, Any]], int]:
    """The scores of the reviews stored for [start, end), scoring (and storing) those not scored yet."""
    span = {"event_time": {"$gte": start, "$lt": end}}
    have = {d["_id"]: d for d in store.find(REVIEW_SCORES, span)}
    fields = {"product_id": 1, "event_time": 1, "rating": 1}
    stored = store.find(REVIEWS, span, projection=fields)
    missing = sorted(r["_id"] for r in stored if r["_id"] not in have)
    new: list[dict[str, Any]] = []
    # only these texts are read (a re-walk reads no text twice), IN_CHUNK at a time: a busy day's ids
    # would not fit one command, and scoring them takes long enough that the lease is renewed per chunk
    for i in range(0, len(missing), IN_CHUNK):
        hold()
        chunk = [score_document(r, score_text(r.get("text", "")), SCORER) for r in
                 store.find(REVIEWS, {"_id": {"$in": missing[i:i + IN_CHUNK]}}, projection={**fields, "text": 1})]
        store.insert_missing(REVIEW_SCORES, chunk)
        new += chunk
    return list(have.values()) + new, len(new)


def _run(store: MongoStore, config: SentimentConfig, end: dt.datetime,
         clock: Callable[[], dt.datetime], hold: Callable[[], None], routes: routing.Routes) -> SentimentRun:
    state = SentimentState.from_document(store.find_one(SENTIMENT_STATE, {"_id": STATE_ID}))
    start = state.next_hour or _first_hour(store, end)
    if start is None:
        return SentimentRun(None, 0, 0, [], [], 0)
    open_before = {e["_id"] for e in state.open.values()}
    hours = scored = 0
    changed: dict[str, dict[str, Any]] = {}
    while start < end:
        if hours:
            hold()
        stop = min(end, start + STEP)
        scores, n = _scores(store, start, stop, hold)
        new = hour_stats(scores)
        history = [HourStats.from_document(d) for d in
                   store.find(SENTIMENT_HOUR, {"hour": {"$gte": start - config.history, "$lt": start}})]
        if not new and not history and not state.open:
            # a quiet stretch (no review within reach, no episode open) decides nothing until the next
            # review: walk to it at once rather than a day at a time (a stray review years back)
            stop = _next_hour_with_reviews(store, stop, end)
        result = walk(state, history + new, start=start, end=stop, config=config)
        if new:
            store.write_documents(SENTIMENT_HOUR, [s.to_document() for s in new])
        if result.changed:
            store.write_documents(OPS_ALERTS, result.changed)
        if result.opened:
            # before the state: a crash re-decides these hours and queues the same ids, kept once. The
            # event holds only the figures at opening, so the episode's later version here changes nothing
            raised = set(result.opened)
            outbox.enqueue_events(store, routes, [routing.ops_alert_event(e) for e in result.changed
                                                  if e["_id"] in raised], now=clock())
        store.replace_document(SENTIMENT_STATE, {"_id": STATE_ID, **result.state.to_document(),
                                                 "scorer": SCORER, "updated_at": clock()})
        state, start = result.state, stop
        hours, scored = hours + result.evaluated, scored + n
        changed.update((e["_id"], e) for e in result.changed)
    episodes = [changed[i] for i in sorted(changed)]
    opened = [e for e in episodes if e["_id"] not in open_before]
    cleared = [e for e in episodes if e["status"] == "cleared"]
    for e in opened:
        log.warning("sentiment drop: %s", e["reason"])
    for e in cleared:
        log.info("sentiment drop cleared: %r at %s", e["product_id"], e["cleared_at"])
    return SentimentRun(state.next_hour, hours, scored, opened, cleared, len(state.open))


def summary(run: SentimentRun) -> dict[str, Any]:
    return {"decided_until": run.decided_until.isoformat() if run.decided_until else None, "hours": run.hours,
            "scored": run.scored, "opened": [e["_id"] for e in run.opened],
            "cleared": [e["_id"] for e in run.cleared], "open_now": run.open_now}
