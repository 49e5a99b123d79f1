"""The local stack's JVMs' stops over a bench step, read from their safepoint logs.

The MongoDB-wire stand-in and the Kafka broker are JVMs on the same two cores as the processor. When one
stops (a collector's pause, or any other safepoint), every client waits for as long as it takes: in
session 16, G1 stopped the stand-in 73 times for 170 ms on average after a few e2e and latency runs, the
size of the alert-latency tail. `make bench` records the stops next to the latency figures so a p99 can
be told apart from the processor's own work (issue 29).

devstack/stack.py starts each JVM with `-Xlog:safepoint` into `.devstack/logs/<service>-safepoints.log`:
a line per safepoint with the time its threads stood still ("Total: N ns"), whatever the collector.
(Until session 20 this read `jstat -gc`, whose counters under a concurrent collector such as Shenandoah,
the stand-in's since then, time concurrent work that stops nobody.) A reading is the log's size; the
stops between two readings are the lines written in between. Nothing here is needed for a figure:
without a stack started by devstack/stack.py, or after the log rotated, the step reports no stops.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from bench.process_cpu import stack_pid
from tests.fixtures.devstack import load_stack  # devstack/stack.py knows where its logs are

_TOTAL = re.compile(r"\bTotal: (\d+) ns")


class LogPosition(NamedTuple):
    """Where a JVM's safepoint log ended at a reading."""

    path: Path
    offset: int


def stopped_ms(text: str) -> list[float]:
    """The stop of each complete safepoint line of `text`, in ms (a last line still being written, and
    any other line, is left out)."""
    lines = text.split("\n")[:-1]  # a line without its newline is not complete yet
    return [int(found.group(1)) / 1e6 for line in lines if (found := _TOTAL.search(line))]


def position(service: str) -> LogPosition | None:
    """The end of the stack's `service` ("mongo" or "kafka") safepoint log now, or None (not started by
    this stack, or no log)."""
    if stack_pid(service) is None:
        return None
    try:
        path = getattr(load_stack(), service.upper()).safepoints
        return LogPosition(path, path.stat().st_size)
    except (OSError, AttributeError):
        return None


def stops_between(before: LogPosition | None, after: LogPosition | None) -> dict[str, float] | None:
    """{"stops", "stopped_ms", "longest_ms"} between two readings of one log, or None if either is missing
    or the log was rotated or replaced in between."""
    if before is None or after is None or before.path != after.path or after.offset < before.offset:
        return None
    try:
        with open(after.path, "rb") as log:
            log.seek(before.offset)
            text = log.read(after.offset - before.offset).decode("utf-8", errors="replace")
    except OSError:
        return None
    stops = stopped_ms(text)
    return {"stops": len(stops), "stopped_ms": round(sum(stops), 1),
            "longest_ms": round(max(stops, default=0.0), 1)}
