"""Crash injection for the fault tests (TXNMON_FAILPOINTS): the process dies like a SIGKILL at a
named write step, so the tests prove what a crash there leaves behind."""

from __future__ import annotations

import logging
import os

log = logging.getLogger("txnmon.stream")


class Failpoints:
    """Crash injection for the fault tests: TXNMON_FAILPOINTS="mongodb-written@2" makes the process
    die (os._exit, like a SIGKILL: no cleanup, no commit) the 2nd time it passes that point.

    Points: `rejects-written` (the raw batch's rejected records stored), `mongodb-written` (the
    judged batch stored, the Kafka transaction not begun), `committed` (the transaction committed);
    `txnmon events`: `events-written` (events, rejects and DLQ copies written, offsets not committed),
    `events-committed`.
    Unset, every check is a dictionary lookup that finds nothing.
    """

    def __init__(self, spec: str | None) -> None:
        self.at: dict[str, int] = {}
        for item in filter(None, (spec or "").split(",")):
            name, _, n = item.strip().partition("@")
            self.at[name] = int(n or 1)
        self.seen: dict[str, int] = {}

    def hit(self, name: str) -> None:
        if name not in self.at:
            return
        self.seen[name] = self.seen.get(name, 0) + 1
        if self.seen[name] == self.at[name]:
            log.warning("failpoint %s@%d: dying now", name, self.at[name])
            logging.shutdown()
            os._exit(137)
