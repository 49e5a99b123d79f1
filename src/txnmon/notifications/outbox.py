"""The notifications outbox: the routes in force, events into the outbox, and the operator's side.

- `RoutesFeed`: the routes file, reloaded between batches (a bad file is refused, the old routes stay);
- `enqueue_events` / `notify_pipeline_event`: events (a failed DAG task, a failed quality suite) routed
  into `notifications`, one entry per (event, destination) with a natural `_id`, inserted only if
  absent, so an event enqueued twice is queued once (the processor's alerts come in the same way,
  through `pipeline.sinks.NotificationsSink`, in the batch's own writes);
- counts, the dead letters and `resend` for `txnmon notify` and `txnmon status`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from txnmon.adapters.mongo import MongoStore, OutboxRepository
from txnmon.core.collection_names import NOTIFICATIONS
from txnmon.errors import TxnmonError
from txnmon.jobs import audit
from txnmon.jobs.file_watch import FileWatch
from txnmon.notifications import routes as routing
from txnmon.settings import Settings

log = logging.getLogger("txnmon.notify")


def load_routes(path: Path | str, allowed_hosts: Sequence[str] = routing.DEFAULT_ALLOWED_HOSTS,
                env: Mapping[str, str] | None = None) -> routing.Routes:
    """The routes file, its destinations' hosts checked against `allowed_hosts` (NOTIFY_ALLOWED_HOSTS)
    and, with `env` (the notify worker's), the hosts of the URLs it holds."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise routing.RoutesError(f"cannot read routes file {path}: {exc.strerror}") from None
    return routing.parse_routes(text, str(path), allowed_hosts, env)


class RoutesFeed:
    """The routes file, reloaded when it changes (checked every 2 s, or at once after `request()`).

    A file that does not validate is refused with the reason in the log; the routes loaded before stay.
    """

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.monotonic,
                 allowed_hosts: Sequence[str] = routing.DEFAULT_ALLOWED_HOSTS,
                 env: Mapping[str, str] | None = None) -> None:
        self.path = Path(path)
        self.allowed_hosts = tuple(allowed_hosts)
        self.env = env
        # a bad file at start-up is an error, not a silent no-route
        self.routes = load_routes(self.path, self.allowed_hosts, self.env)
        self.watch = FileWatch(self.path, clock=clock)

    def request(self, *_: Any) -> None:
        self.watch.request()

    def maybe_reload(self) -> routing.Routes:
        if not self.watch.changed():
            return self.routes
        try:
            routes = load_routes(self.path, self.allowed_hosts, self.env)
        except routing.RoutesError as exc:
            log.error("routes reload refused, keeping version %s: %s", self.routes.version, exc)
            return self.routes
        if routes.version != self.routes.version:
            log.info("routes reloaded: %s -> %s", self.routes.version, routes.version,
                     extra={"routes_version": routes.version})
            self.routes = routes
        return self.routes


def enqueue_events(store: MongoStore, routes: routing.Routes, events: Iterable[Mapping[str, Any]],
                   now: dt.datetime | None = None) -> list[str]:
    """Pipeline events into the outbox; return the entry ids (an event enqueued before is left as it was)."""
    entries = routing.outbox_entries(events, routes, now or dt.datetime.now(dt.UTC))
    if entries:
        store.insert_missing(NOTIFICATIONS, entries)
    return [e["_id"] for e in entries]


def notify_pipeline_event(settings: Settings, kind: str, event_id: str, *, title: str, detail: str,
                          **fields: Any) -> list[str]:
    """One pipeline event (a failed DAG task, a failed quality suite) into the outbox, routed now."""
    routes = load_routes(settings.notify_routes_file, settings.notify_allowed_host_list)
    event = routing.pipeline_event(kind, event_id, title=title, detail=detail, at=dt.datetime.now(dt.UTC), **fields)
    ids = enqueue_events(MongoStore(settings), routes, [event])
    log.info("%s %s: %d notification(s) queued", kind, event_id, len(ids))
    return ids


def outbox_counts(store: MongoStore) -> dict[str, int]:
    return {status: store.count(NOTIFICATIONS, {"status": status}) for status in (routing.PENDING, routing.DEAD)}


def oldest_due(store: MongoStore) -> dt.datetime | None:
    """When the pending notification due first was due (None: nothing pending)."""
    [first] = store.find(NOTIFICATIONS, {"status": routing.PENDING}, sort=[("next_attempt_at", 1)], limit=1,
                         projection={"next_attempt_at": 1}) or [None]
    return first["next_attempt_at"] if first else None


def dead_entries(store: MongoStore, limit: int = 100) -> list[dict[str, Any]]:
    return store.find(NOTIFICATIONS, {"status": routing.DEAD}, sort=[("dead_at", -1)], limit=limit,
                      projection={"event": 0, "attempt_log": 0})


def resend(store: MongoStore, ids: Iterable[str] = (), *, all_dead: bool = False, by: str | None = None) -> list[str]:
    """Dead entries back to pending (due now, attempts from zero); audited. Ids that are not dead are
    left alone (a pending or sent entry is never sent again by this)."""
    wanted = sorted(set(ids))
    if not all_dead and not wanted:
        raise TxnmonError("name the notifications to re-send, or --all-dead")
    who = audit.who(by)
    now = dt.datetime.now(dt.UTC)
    query: dict[str, Any] = {} if all_dead else {"_id": {"$in": wanted}}
    requeued = OutboxRepository(store).requeue_dead(query, now, who)
    if requeued:
        audit.record(store, "notify.resend", by=who, target="notifications", before={"status": routing.DEAD},
                     after={"status": routing.PENDING}, now=now,
                     detail={"ids": requeued[:1000], "count": len(requeued)})
    return requeued


def render_dead(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "no dead-lettered notifications"
    lines = [f"{len(entries)} dead-lettered notification(s), newest first:"]
    for e in entries:
        when = e.get("dead_at")
        stamp = f"{when:%Y-%m-%d %H:%M:%S}" if isinstance(when, dt.datetime) else "?"
        lines.append(f"  {e['_id']}  {e['destination']}  {stamp}  after {e.get('attempts', 0)} attempt(s): "
                     f"{e.get('last_outcome', '')}")
    return "\n".join(lines)
