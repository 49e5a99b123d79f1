"""`txnmon notify`: the worker that delivers the outbox.

It claims due entries with a lease (several workers may run), delivers each through its channel,
and on failure retries with exponential backoff and jitter, up to NOTIFY_MAX_ATTEMPTS, then
dead-letters; a per-destination rate limit shared by all workers. Delivery is at least once: a
worker that dies after sending and before recording it sends again when the lease ends, with the
same Idempotency-Key (webhooks) or X-Txnmon-Notification header (mail), so receivers can drop the copy.
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
from collections.abc import Callable, Mapping
from typing import Any

from txnmon.adapters.mongo import MongoStore, OutboxRepository
from txnmon.errors import DeliveryFailed, DeliveryRefused, StoreUnavailable
from txnmon.notifications import policy
from txnmon.notifications import routes as routing
from txnmon.notifications.channels import deliver
from txnmon.notifications.outbox import RoutesFeed
from txnmon.settings import Settings

log = logging.getLogger("txnmon.notify")


class NotifyWorker:
    """One `txnmon notify` process. `run()` returns when stopped (SIGTERM/SIGINT) or idle long enough."""

    def __init__(self, settings: Settings, *, env: Mapping[str, str] | None = None,
                 rng: Callable[[], float] = random.random, owner: str | None = None,
                 observe: Callable[[str, str, float], None] = lambda destination, outcome, seconds: None) -> None:
        self.settings = settings
        self.observe = observe  # (destination, sent | retry | dead, seconds of the attempt): the entry point's metrics
        self.store = MongoStore(settings)
        self.env = os.environ if env is None else env
        # the worker holds the destinations' secrets: the hosts of the URLs in its environment are
        # checked with the file (a refused file at start-up is an error, on reload the old routes stay)
        self.feed = RoutesFeed(settings.notify_routes_file, allowed_hosts=settings.notify_allowed_host_list,
                               env=self.env)
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

    def _reserve(self, name: str, destination: routing.DestinationBase) -> float:
        """A send slot in the destination's rate limit, shared by every worker: 0.0, or seconds to wait."""
        rate = destination.rate_per_second
        burst = max(1.0, rate)  # up to a second's worth at once after a quiet spell
        return OutboxRepository(self.store).reserve_send(name, time.time(),
                                                         lambda tat, now: policy.rate_slot(tat, now, rate, burst))

    def lease_seconds(self, routes: routing.Routes) -> float:
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
            # checked again at send time: the routes in force were checked with this environment, but
            # nothing may leave for a host off the list even if that ever changes
            refused = routing.destination_refusals(name, destination, self.feed.allowed_hosts, self.env)
            if refused:
                raise DeliveryRefused("; ".join(refused))
            answer = deliver(entry, destination, self.env, now)
        except DeliveryRefused as exc:
            self._settle(entry, attempts, routing.DEAD, f"refused: {exc}", started)
            return True
        except DeliveryFailed as exc:
            if attempts >= s.notify_max_attempts:
                self._settle(entry, attempts, routing.DEAD, f"gave up after {attempts} attempts: {exc}", started)
                return True
            delay = max(exc.retry_after, policy.backoff_delay(attempts, base=s.notify_backoff_base_seconds,
                                                            cap=s.notify_backoff_max_seconds, jitter=self.rng()))
            self._settle(entry, attempts, routing.PENDING, str(exc), started, retry_in=delay)
            return True
        self._settle(entry, attempts, routing.SENT, answer, started)
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
        if status == routing.SENT:
            fields["sent_at"] = now
        elif status == routing.DEAD:
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
        self.observe(entry["destination"], "retry" if status == routing.PENDING else status, seconds)
        if status == routing.SENT:
            self.counts["sent"] += 1
            log.debug("sent %s (%s)", entry["_id"], outcome, extra=where)
        elif status == routing.DEAD:
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
