"""`WalkLease`: the lease an event-time walk (abandonment, sentiment, stock) holds while it runs.

The walks run inside `txnmon events` after every stored batch, so a member killed mid-walk (SIGKILL, the
OOM killer, a lost node) is an ordinary event: the lease it held must not stop the walks of the member that
replaces it for long. With a ten-minute lease, a restarted service decided no abandoned cart, stock-out or
sentiment drop for ten minutes. So the term is short (`TERM`), and on the wall clock a heartbeat thread
renews it every third of the term for as long as the walk runs, however long one step takes. The walk still
renews it itself before each step (`hold()`), which is where a lost lease stops it.

A run given a test clock gets no heartbeat: a thread calling the test's clock would change what the test
sees. Its own renewals before each step are enough there.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import uuid
from collections.abc import Callable
from types import TracebackType

from txnmon.adapters.mongo import LeasesRepository, MongoStore
from txnmon.errors import RetryableError

log = logging.getLogger(__name__)

TERM = dt.timedelta(seconds=30)  # what a crashed holder costs the next run at most


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class WalkLease:
    """`with WalkLease(...) as lease:` takes the lease or raises `busy(message)`; `lease.hold()` renews it
    (raising `busy` if another run took it); leaving the block stops the heartbeat and releases it."""

    def __init__(self, store: MongoStore, name: str, trigger: str, busy: type[RetryableError],
                 clock: Callable[[], dt.datetime] = utcnow, *, term: dt.timedelta = TERM) -> None:
        self.leases = LeasesRepository(store)
        self.name, self.busy, self.clock, self.term = name, busy, clock, term
        self.owner = f"{trigger}-{uuid.uuid4().hex[:12]}"
        self._stop = threading.Event()
        self._lost = threading.Event()  # set once the lease is found taken: this walk must stop
        self._beat: threading.Thread | None = None

    def hold(self) -> None:
        """Take the lease, or renew it; raise `busy` if another run holds it, or took it since the
        heartbeat last found it lost (renewing it again here would let two walks write at once)."""
        now = self.clock()
        if self._lost.is_set() or not self.leases.acquire(self.name, self.owner, now, now + self.term):
            self._lost.set()
            raise self.busy(f"another {self.name} run is in progress (retry later)",
                            retry_after=self.term.total_seconds() / 3)

    def __enter__(self) -> WalkLease:
        self.hold()
        if self.clock is utcnow:
            self._beat = threading.Thread(target=self._heartbeat, name=f"lease-{self.name}", daemon=True)
            self._beat.start()
        return self

    def _heartbeat(self) -> None:
        every = self.term.total_seconds() / 3
        while not self._stop.wait(every):
            try:
                now = utcnow()
                # bounded by one beat: a renewal hung in an outage must not outlive the term unnoticed
                if not self.leases.acquire(self.name, self.owner, now, now + self.term, timeout_s=every):
                    log.warning("%s lease taken by another run; this walk stops at its next step", self.name)
                    self._lost.set()
                    return
            except Exception as exc:  # an outage: the walk's own calls meet it too; keep beating
                log.warning("%s lease not renewed (%s); trying again in %.0fs", self.name, exc, every)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        try:
            self.leases.release(self.name, self.owner)
        except Exception as why:  # the walk is done; an unreleased lease only ends with its term
            log.warning("%s lease not released (it ends within %s): %s", self.name, self.term, why)
