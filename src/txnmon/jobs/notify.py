"""Notifications: the outbox the processor writes with the alerts, and the worker that delivers it.

- `NotificationsSink` (a processor sink, after the alerts sink): the batch's raised alerts through
  the routes into `notifications`, one entry per (alert, destination) with a natural `_id`, inserted
  only if absent. A batch written again after a crash finds its entries and changes none of them,
  so no decision is lost or taken twice and no delivery's status is reset.
- `NotifyWorker` (`txnmon notify`): claims due entries with a lease (several workers may run),
  delivers, and on failure retries with exponential backoff and jitter, up to NOTIFY_MAX_ATTEMPTS,
  then dead-letters; a per-destination rate limit per worker. Delivery is at least once: a worker
  that dies after sending and before recording it sends again when the lease ends, with the same
  Idempotency-Key (webhooks) or X-Txnmon-Notification header (mail), so receivers can drop the copy.
- `enqueue_events`: pipeline events (a failed DAG task, a failed quality suite) into the same outbox.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from txnmon.adapters import delivery
from txnmon.adapters.mongo import MongoStore, OutboxRepository
from txnmon.core import notify as core
from txnmon.core.batch import BatchResult
from txnmon.core.collection_names import ALERTS, NOTIFICATIONS, SUPPRESSED_ALERTS
from txnmon.errors import DeliveryFailed, DeliveryRefused, StoreUnavailable, TxnmonError
from txnmon.jobs import audit
from txnmon.settings import Settings

log = logging.getLogger("txnmon.notify")

ROUTES_CHECK_INTERVAL_S = 2.0


def load_routes(path: Path | str) -> core.Routes:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise core.RoutesError(f"cannot read routes file {path}: {exc.strerror}") from None
    return core.parse_routes(text, str(path))


class RoutesFeed:
    """The routes file, reloaded when it changes (checked every 2 s, or at once after `request()`).

    A file that does not validate is refused with the reason in the log; the routes loaded before stay.
    """

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.clock = clock
        self.routes = load_routes(self.path)  # a bad file at start-up is an error, not a silent no-route
        self._stat = self._file_stat()
        self._checked = clock()
        self.requested = False

    def _file_stat(self) -> tuple[float, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def request(self, *_: Any) -> None:
        self.requested = True

    def maybe_reload(self) -> core.Routes:
        now = self.clock()
        if not self.requested and now - self._checked < ROUTES_CHECK_INTERVAL_S:
            return self.routes
        self._checked = now
        current = self._file_stat()
        if not self.requested and current == self._stat:
            return self.routes
        self.requested = False
        self._stat = current
        try:
            routes = load_routes(self.path)
        except core.RoutesError as exc:
            log.error("routes reload refused, keeping version %s: %s", self.routes.version, exc)
            return self.routes
        if routes.version != self.routes.version:
            log.info("routes reloaded: %s -> %s", self.routes.version, routes.version,
                     extra={"routes_version": routes.version})
            self.routes = routes
        return self.routes


class NotificationsSink:
    """A judged batch's raised alerts into the outbox, as the routes say (suppressed and shadow never).

    `only_new` (a window replay): only alerts not stored yet are routed, so a replay does not page
    anyone for alerts raised before a route existed. That sink must run BEFORE the alerts sink: an alert
    stored by a replay that then died before routing it would look old to the next run and never be
    routed; the other way round, the next run routes it again and the outbox's key keeps one entry."""

    name = "mongodb"

    def __init__(self, store: MongoStore, feed: RoutesFeed, *, only_new: bool = False) -> None:
        self.store = store
        self.feed = feed
        self.only_new = only_new

    def write(self, batch: BatchResult) -> None:
        alerts = batch.alerts
        if alerts and self.only_new:
            ids = {"_id": {"$in": [a["_id"] for a in alerts]}}
            # raised before, or suppressed before (lists or suppress_for then): not news to anyone now
            stored = {d["_id"] for c in (ALERTS, SUPPRESSED_ALERTS)
                      for d in self.store.find(c, ids, projection={"_id": 1})}
            alerts = [a for a in alerts if a["_id"] not in stored]
        if not alerts:
            return
        entries = core.outbox_entries((core.event_of_alert(a) for a in alerts), self.feed.routes,
                                      dt.datetime.now(dt.UTC))
        if entries:
            self.store.insert_missing(NOTIFICATIONS, entries)


def enqueue_events(store: MongoStore, routes: core.Routes, events: Iterable[Mapping[str, Any]],
                   now: dt.datetime | None = None) -> list[str]:
    """Pipeline events into the outbox; return the entry ids (an event enqueued before is left as it was)."""
    entries = core.outbox_entries(events, routes, now or dt.datetime.now(dt.UTC))
    if entries:
        store.insert_missing(NOTIFICATIONS, entries)
    return [e["_id"] for e in entries]


def notify_pipeline_event(settings: Settings, kind: str, event_id: str, *, title: str, detail: str,
                          **fields: Any) -> list[str]:
    """One pipeline event (a failed DAG task, a failed quality suite) into the outbox, routed now."""
    routes = load_routes(settings.notify_routes_file)
    event = core.pipeline_event(kind, event_id, title=title, detail=detail, at=dt.datetime.now(dt.UTC), **fields)
    ids = enqueue_events(MongoStore(settings), routes, [event])
    log.info("%s %s: %d notification(s) queued", kind, event_id, len(ids))
    return ids


# --- the worker ------------------------------------------------------------------------------------


class MissingSecret(DeliveryFailed):
    """A variable the routes file names is not set in the worker's environment (retried: a restart
    with the variable set fixes it; after NOTIFY_MAX_ATTEMPTS the entry is dead and can be re-sent)."""


def _secret(env: Mapping[str, str], name: str | None, what: str, destination: str) -> str:
    value = env.get(name or "", "")
    if not value:
        raise MissingSecret(f"destination {destination}: {what} variable {name} is not set in the worker's "
                            "environment")
    return value


def deliver(entry: Mapping[str, Any], destination: Any, env: Mapping[str, str], now: dt.datetime) -> str:
    """Send one outbox entry to its destination; return a short description of the answer."""
    name = entry["destination"]
    if destination.type == "webhook":
        url = _secret(env, destination.url_env, "URL", name)
        key = _secret(env, destination.secret_env, "secret", name).encode("utf-8")
        body = core.webhook_body(entry)
        headers = core.webhook_headers(entry, body, key, int(now.timestamp()))
        return f"HTTP {delivery.post(url, body, headers, destination.timeout_seconds)}"
    if destination.type == "slack":
        url = _secret(env, destination.url_env, "URL", name)
        body = core.slack_body(entry)
        headers = {"Content-Type": "application/json", core.IDEMPOTENCY_HEADER: str(entry["_id"])}
        return f"HTTP {delivery.post(url, body, headers, destination.timeout_seconds)}"
    if destination.type == "email":
        username = password = None
        if destination.username_env:
            username = _secret(env, destination.username_env, "SMTP username", name)
            password = _secret(env, destination.password_env, "SMTP password", name)
        subject, text = core.email_message(entry)
        delivery.send_mail(host=destination.smtp_host, port=destination.smtp_port, sender=destination.sender,
                           to=destination.to, subject=subject, text=text, message_id_key=str(entry["_id"]),
                           username=username, password=password, starttls=destination.starttls,
                           use_ssl=destination.ssl, timeout_s=destination.timeout_seconds)
        return "accepted by SMTP"
    raise DeliveryRefused(f"destination {name}: unknown type {destination.type!r}")


class NotifyWorker:
    """One `txnmon notify` process. `run()` returns when stopped (SIGTERM/SIGINT) or idle long enough."""

    def __init__(self, settings: Settings, *, env: Mapping[str, str] | None = None,
                 rng: Callable[[], float] = random.random, owner: str | None = None,
                 observe: Callable[[str, str, float], None] = lambda destination, outcome, seconds: None) -> None:
        self.settings = settings
        self.observe = observe  # (destination, sent | retry | dead, seconds of the attempt): the entry point's metrics
        self.store = MongoStore(settings)
        self.feed = RoutesFeed(settings.notify_routes_file)
        self.env = os.environ if env is None else env
        self.rng = rng
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        # destination -> monotonic time before which its shared rate limit said wait (saves asking again)
        self.blocked_until: dict[str, float] = {}
        self.stop_event = threading.Event()
        self.counts = {"sent": 0, "retried": 0, "dead": 0}

    def request_stop(self, *_: Any) -> None:
        if not self.stop_event.is_set():
            log.info("stop requested: finishing the current delivery")
        self.stop_event.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.feed.request)

    def _reserve(self, name: str, destination: core.DestinationBase) -> float:
        """A send slot in the destination's rate limit, shared by every worker: 0.0, or seconds to wait."""
        rate = destination.rate_per_second
        burst = max(1.0, rate)  # up to a second's worth at once after a quiet spell
        return OutboxRepository(self.store).reserve_send(name, time.time(),
                                                         lambda tat, now: core.rate_slot(tat, now, rate, burst))

    def lease_seconds(self, routes: core.Routes) -> float:
        """NOTIFY_LEASE_SECONDS, or longer than any destination may take (an SMTP exchange is a few
        round trips, each with the timeout): a lease must not end while its delivery is in flight."""
        slowest = max((d.timeout_seconds for d in routes.destinations.values()), default=0.0)
        return max(self.settings.notify_lease_seconds, 4 * slowest)

    def step(self) -> bool:
        """Claim and settle one due entry; False when none is due (or every due one is rate-limited)."""
        routes = self.feed.maybe_reload()
        s = self.settings
        now = dt.datetime.now(dt.UTC)
        mono = time.monotonic()
        throttled = [name for name, until in self.blocked_until.items() if until > mono]
        lease_until = now + dt.timedelta(seconds=self.lease_seconds(routes))
        entry = OutboxRepository(self.store).claim(self.owner, now, lease_until, throttled)
        if entry is None:
            return False
        name = entry["destination"]
        destination = routes.destinations.get(name)
        if destination is not None:
            try:
                wait = self._reserve(name, destination)
            except StoreUnavailable:
                self._give_back(entry)
                raise
            if wait > 0:  # over the destination's rate: give the entry back, deliver other destinations' meanwhile
                self._give_back(entry)
                self.blocked_until[name] = time.monotonic() + wait
                return True
        attempts = int(entry.get("attempts", 0)) + 1
        started = time.perf_counter()
        try:
            if destination is None:
                raise DeliveryFailed(f"destination {name} is not in the routes file {self.feed.path}")
            answer = deliver(entry, destination, self.env, now)
        except DeliveryRefused as exc:
            self._settle(entry, attempts, core.DEAD, f"refused: {exc}", started)
            return True
        except DeliveryFailed as exc:
            if attempts >= s.notify_max_attempts:
                self._settle(entry, attempts, core.DEAD, f"gave up after {attempts} attempts: {exc}", started)
                return True
            delay = max(exc.retry_after, core.backoff_delay(attempts, base=s.notify_backoff_base_seconds,
                                                            cap=s.notify_backoff_max_seconds, jitter=self.rng()))
            self._settle(entry, attempts, core.PENDING, str(exc), started, retry_in=delay)
            return True
        self._settle(entry, attempts, core.SENT, answer, started)
        return True

    def _give_back(self, entry: Mapping[str, Any]) -> None:
        """The entry back to the outbox untried (no attempt counted); if that fails too its lease ends by itself."""
        try:
            OutboxRepository(self.store).release(entry["_id"], self.owner)
        except StoreUnavailable as exc:
            log.warning("could not give %s back (its lease ends by itself): %s", entry["_id"], exc)

    def _settle(self, entry: Mapping[str, Any], attempts: int, status: str, outcome: str, started: float,
                retry_in: float | None = None) -> None:
        now = dt.datetime.now(dt.UTC)
        fields: dict[str, Any] = {"status": status, "last_outcome": outcome[:500]}
        if status == core.SENT:
            fields["sent_at"] = now
        elif status == core.DEAD:
            fields["dead_at"] = now
        else:
            fields["next_attempt_at"] = now + dt.timedelta(seconds=retry_in or 0.0)
        seconds = time.perf_counter() - started
        attempt = {"at": now, "by": self.owner, "outcome": outcome[:500], "seconds": round(seconds, 3)}
        if not OutboxRepository(self.store).settle(entry["_id"], self.owner, fields, attempt):
            log.warning("lease on %s lost before its outcome was recorded (%s); the next owner sends it again",
                        entry["_id"], outcome)
            return
        where = {"notification": entry["_id"], "destination": entry["destination"], "attempt": attempts}
        self.observe(entry["destination"], "retry" if status == core.PENDING else status, seconds)
        if status == core.SENT:
            self.counts["sent"] += 1
            log.debug("sent %s (%s)", entry["_id"], outcome, extra=where)
        elif status == core.DEAD:
            self.counts["dead"] += 1
            log.error("dead-lettered %s: %s (`txnmon notify resend %s` after fixing it)", entry["_id"], outcome,
                      entry["_id"], extra=where)
        else:
            self.counts["retried"] += 1
            log.warning("delivery of %s failed (attempt %d/%d): %s; retrying in %.1fs", entry["_id"], attempts,
                        self.settings.notify_max_attempts, outcome, retry_in or 0.0, extra=where)

    def run(self, *, max_idle_s: float | None = None) -> int:
        s = self.settings
        log.info("notify worker %s started: mongodb %s, routes %s (%s), %d attempts at most", self.owner,
                 s.mongo_db, self.feed.path, self.feed.routes.version, s.notify_max_attempts)
        idle_since = time.monotonic()
        outage_delay = 0.5
        while not self.stop_event.is_set():
            try:
                worked = self.step()
                outage_delay = 0.5
            except StoreUnavailable as exc:
                log.warning("MongoDB unavailable: %s; retrying in %.1fs", exc, outage_delay)
                self.stop_event.wait(outage_delay)
                outage_delay = min(outage_delay * 2, 10.0)
                continue
            if worked:
                idle_since = time.monotonic()
                continue
            if max_idle_s is not None and time.monotonic() - idle_since >= max_idle_s:
                log.info("idle for %.1fs: exiting", max_idle_s)
                break
            # nothing due, or only entries of rate-limited destinations: ask again when the first of
            # those may send, at the latest after the poll interval
            mono = time.monotonic()
            unblocked = min((until - mono for until in self.blocked_until.values() if until > mono),
                            default=s.notify_poll_seconds)
            self.stop_event.wait(min(s.notify_poll_seconds, unblocked))
        log.info("notify worker stopped: %d sent, %d retries scheduled, %d dead-lettered", self.counts["sent"],
                 self.counts["retried"], self.counts["dead"])
        return 0


def run_worker(settings: Settings, *, max_idle_s: float | None = None,
               observe: Callable[[str, str, float], None] | None = None) -> int:
    """Entry point of `txnmon notify`."""
    worker = NotifyWorker(settings, **({"observe": observe} if observe else {}))
    worker.install_signal_handlers()
    return worker.run(max_idle_s=max_idle_s)


# --- the operator's side: counts, the dead letters, re-sending -----------------------------------------


def outbox_counts(store: MongoStore) -> dict[str, int]:
    return {status: store.count(NOTIFICATIONS, {"status": status}) for status in (core.PENDING, core.DEAD)}


def oldest_due(store: MongoStore) -> dt.datetime | None:
    """When the pending notification due first was due (None: nothing pending)."""
    [first] = store.find(NOTIFICATIONS, {"status": core.PENDING}, sort=[("next_attempt_at", 1)], limit=1,
                         projection={"next_attempt_at": 1}) or [None]
    return first["next_attempt_at"] if first else None


def dead_entries(store: MongoStore, limit: int = 100) -> list[dict[str, Any]]:
    return store.find(NOTIFICATIONS, {"status": core.DEAD}, sort=[("dead_at", -1)], limit=limit,
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
        audit.record(store, "notify.resend", by=who, target="notifications", before={"status": core.DEAD},
                     after={"status": core.PENDING}, now=now, detail={"ids": requeued[:1000], "count": len(requeued)})
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
