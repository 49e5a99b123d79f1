"""The local stack's JVMs' garbage-collector pauses over a bench step, read with the JDK's `jstat`.

The MongoDB-wire stand-in and the Kafka broker are JVMs on the same two cores as the processor. A young
collection of the stand-in stops every client for as long as it takes: in session 16, `jstat -gcutil` showed
73 young collections averaging 170 ms after a few e2e and latency runs (G1's default pause goal is 200 ms),
which is the size of the alert-latency tail. `make bench` records them next to the latency figures so a p99
can be told apart from the processor's own work (issue 29). Nothing here is needed for a figure: without
`jstat` or a stack started by devstack/stack.py the step reports no pauses.

The figures are pause times for the stack's collector, G1 (and for Parallel or Serial). Under a concurrent
collector (Shenandoah, ZGC, `DEVSTACK_MONGO_HEAP`) JDK 17's counters also time concurrent work, which stops
nobody: read them as an upper bound there.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import NamedTuple

from bench.process_cpu import stack_pid


class GcTotals(NamedTuple):
    """A JVM's collections so far (young, full, and on G1 the remark and clean-up pauses of its concurrent
    cycles) and their pause seconds."""

    collections: int
    seconds: float


def parse_jstat_gc(text: str) -> GcTotals:
    """`jstat -gc PID`'s two lines (header, values) as totals; ValueError when they are not that."""
    # some collectors make jstat print a "Warning: ..." line before the table
    lines = [line.split() for line in text.strip().splitlines() if line.strip() and not line.startswith("Warning")]
    if len(lines) != 2 or len(lines[0]) != len(lines[1]):
        raise ValueError(f"not jstat -gc output: {text[:200]!r}")
    row = dict(zip(lines[0], lines[1], strict=True))
    try:
        count = sum(int(row[k]) for k in ("YGC", "FGC") if k in row) + int(row.get("CGC", "0").replace("-", "0"))
        return GcTotals(count, float(row["GCT"]))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not jstat -gc output: {text[:200]!r}") from exc


def gc_totals(service: str) -> GcTotals | None:
    """The totals of the stack's `service` ("mongo" or "kafka") now, or None (not started by this stack, no
    `jstat`, or it did not answer)."""
    jstat = shutil.which("jstat")
    if jstat is None:
        return None
    pid = stack_pid(service)
    if pid is None:
        return None
    try:
        done = subprocess.run([jstat, "-gc", str(pid)], capture_output=True, text=True, timeout=30, check=False)
        return parse_jstat_gc(done.stdout) if done.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def pauses_between(before: GcTotals | None, after: GcTotals | None) -> dict[str, float] | None:
    """{"collections", "pause_ms", "mean_pause_ms"} between two readings, or None if either is missing."""
    if before is None or after is None:
        return None
    n = after.collections - before.collections
    ms = (after.seconds - before.seconds) * 1000
    return {"collections": n, "pause_ms": round(ms, 1), "mean_pause_ms": round(ms / n, 1) if n else 0.0}
