"""CPU time of the processes of a bench step, read from Linux's /proc/PID/stat: where a transaction's CPU went.

The processor (this process, in the e2e step), the MongoDB-wire stand-in and the Kafka broker share this
machine's two cores. An e2e rate alone does not say which of them a transaction's time went to, nor how much of
the machine was busy meanwhile. In session 17 (issue 29) a 60,000-transaction e2e on a private stack took
about 340 µs of CPU per transaction in all: ~140 in the processor, 150-220 in the stand-in and 20-40 in the
broker, with 1.1-1.3 of the two cores busy; the stand-in's own bulk insert of the same documents (the store
ceiling) took 90-175 µs per document in it. `make bench` records these next to the e2e and ceiling figures,
so a ratio between them can be read as what it is: how the same CPU is spread, not the processor alone.

Nothing here is needed for a figure: on a system without /proc, or with a stack not started by
devstack/stack.py, the processes that cannot be read are left out.
"""

from __future__ import annotations

import os
import resource
import time
from typing import NamedTuple

from tests.fixtures.devstack import load_stack  # devstack/stack.py knows where its pid files are

# the stack's services by the names bench figures use for them
SERVICES = {"store": "MONGO", "broker": "KAFKA"}


def stack_pid(service: str) -> int | None:
    """The pid of the stack's "store" or "broker" (or devstack's own names "mongo", "kafka"), or None when
    this stack did not start it."""
    attr = SERVICES.get(service, service.upper())
    try:
        stack = load_stack()
        return stack.read_pid(getattr(stack, attr))
    except (OSError, AttributeError, ValueError):
        return None


def parse_stat(text: str, ticks_per_second: float) -> float:
    """User plus system CPU seconds from the text of /proc/PID/stat; ValueError when it is not that. The
    command name (field 2) is in parentheses and may hold spaces and parentheses: fields are counted
    after its last ")"."""
    head, sep, rest = text.rpartition(")")
    fields = rest.split()
    if not sep or "(" not in head or len(fields) < 13:
        raise ValueError(f"not /proc/PID/stat: {text[:120]!r}")
    try:  # utime and stime: fields 14 and 15 of the whole line, 12 and 13 after the name
        return (int(fields[11]) + int(fields[12])) / ticks_per_second
    except ValueError as exc:
        raise ValueError(f"not /proc/PID/stat: {text[:120]!r}") from exc


def cpu_seconds(pid: int) -> float | None:
    """The process's CPU seconds so far, or None (gone, or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return parse_stat(f.read(), os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError):
        return None


class CpuReading(NamedTuple):
    """CPU seconds so far by process name, and when they were read (time.monotonic)."""

    at: float
    seconds: dict[str, float]


def read(pids: dict[str, int | None], children: str | None = None) -> CpuReading:
    """A reading of each named process that can be read; `children`: also, under that name, the CPU of this
    process's waited-for children so far (the kernel's account: a child run to its end, as the bench's peer)."""
    seconds = {name: s for name, pid in pids.items() if pid is not None and (s := cpu_seconds(pid)) is not None}
    if children is not None:
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds[children] = used.ru_utime + used.ru_stime
    return CpuReading(time.monotonic(), seconds)


def step_pids(client: str = "processor") -> dict[str, int | None]:
    """This process (as `client`), the stand-in and the broker."""
    return {client: os.getpid(), "store": stack_pid("store"), "broker": stack_pid("broker")}


def per_transaction(before: CpuReading, after: CpuReading, n: int, cores: int | None = None,
                    wall: float | None = None) -> dict[str, object]:
    """{"us_per_tx": {process: µs}, "cores_busy", "bound_tx_per_s"} between two readings over `n` transactions.
    `cores_busy` over `wall` seconds (default: between the readings). `bound_tx_per_s`: the rate at which this
    much CPU per transaction would keep every core busy, an upper bound on this machine for the same work (only
    when all three processes were read)."""
    names = [name for name in after.seconds if name in before.seconds]
    spent = {name: after.seconds[name] - before.seconds[name] for name in names}
    wall = after.at - before.at if wall is None else wall
    out: dict[str, object] = {"us_per_tx": {name: round(s * 1e6 / max(n, 1), 1) for name, s in spent.items()},
                              "cores_busy": round(sum(spent.values()) / wall, 2) if wall > 0 else None}
    total = sum(spent.values()) * 1e6 / max(n, 1)
    if len(names) == 3 and total > 0:
        out["bound_tx_per_s"] = round((cores or len(os.sched_getaffinity(0))) * 1e6 / total)
    return out
