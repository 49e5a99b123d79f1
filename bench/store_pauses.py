"""The local stack's JVMs' stops over a bench step, read from their safepoint logs.

The MongoDB-wire stand-in and the Kafka broker are JVMs on the same two cores as the processor. When one
stops (a collector's pause, or any other safepoint), every client waits for as long as it takes: in
session 16, G1 stopped the stand-in 73 times for 170 ms on average after a few e2e and latency runs, the
size of the alert-latency tail. `make bench` records the stops next to the latency figures so a p99 can
be told apart from the processor's own work (issue 29).

devstack/stack.py starts each JVM with `-Xlog:safepoint` into `.devstack/logs/<service>-safepoints.log`:
a line per safepoint with the time its threads stood still ("Total: N ns"), whatever the collector.
(Until session 20 this read `jstat -gc`, whose counters under a concurrent collector such as Shenandoah,
the stand-in's since then, time concurrent work that stops nobody.) A concurrent collector can still hold
a thread up without a safepoint (Shenandoah paces or stalls an allocating thread when it falls behind):
under it the figure is a lower bound of how long the store stood still. A reading is the log's file and
size; the stops between two readings are the lines written in between. Nothing here is needed for a
figure: without a JVM started by devstack/stack.py with the log, or after the log was rotated or
replaced (a restart), the step reports no stops.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from bench.process_cpu import SERVICES, stack_pid
from tests.fixtures.devstack import load_stack  # devstack/stack.py knows where its logs are

_TOTAL = re.compile(r"\bTotal: (\d+) ns")


class LogPosition(NamedTuple):
    """Where a JVM's safepoint log ended at a reading: the file (path, device and inode: a restarted JVM
    starts a new one) and its size."""

    path: Path
    file: tuple[int, int]
    offset: int


def stopped_ms(text: str) -> list[float]:
    """The stop of each complete safepoint line of `text`, in ms (a last line still being written, and
    any other line, is left out)."""
    lines = text.split("\n")[:-1]  # a line without its newline is not complete yet
    return [int(found.group(1)) / 1e6 for line in lines if (found := _TOTAL.search(line))]


def _command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def position(service: str) -> LogPosition | None:
    """The end of the safepoint log of the stack's `service` ("mongo"/"store" or "kafka"/"broker") now, or
    None (not started by this stack, or started without the log: a stack from before the log was added
    leaves an old file that nothing writes to)."""
    pid = stack_pid(service)
    if pid is None or not any(arg.startswith("-Xlog:safepoint") for arg in _command_line(pid)):
        return None
    try:
        path = getattr(load_stack(), SERVICES.get(service, service.upper())).safepoints
        stat = path.stat()
    except (OSError, AttributeError):
        return None
    return LogPosition(path, (stat.st_dev, stat.st_ino), stat.st_size)


def collector(service: str) -> str | None:
    """The collector the stack's `service` JVM runs (its -XX:+Use...GC flag, e.g. "UseShenandoahGC"), or None
    when it is not known (not started by this stack, or the JVM's default)."""
    pid = stack_pid(service)
    flags = [arg[5:] for arg in _command_line(pid) if arg.startswith("-XX:+Use") and arg.endswith("GC")] \
        if pid is not None else []
    return flags[-1] if flags else None


def stops_between(before: LogPosition | None, after: LogPosition | None) -> dict[str, float] | None:
    """{"stops", "stopped_ms", "longest_ms"} between two readings of one log, or None if either is missing
    or the log was rotated or replaced in between."""
    if before is None or after is None or before.file != after.file or after.offset < before.offset:
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
