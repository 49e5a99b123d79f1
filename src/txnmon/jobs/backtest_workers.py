"""A backtest on several processes: the users in shares (src/txnmon/core/backtest_shards.py), each share
judged by its own process, the findings merged and measured as one run's.

Judging is pure Python, so one process judges on one core (about 65 s per million generated rows in
session 16, issue 29); shares of the users are independent, so `txnmon backtest` uses the machine's cores
(`--workers`). The processes are spawned, not forked: the caller may hold threads (a MongoDB client, the
progress display) whose locks a fork would copy mid-use. A share that fails, or Ctrl-C, ends the others at
once (they are terminated), instead of after every share.

Each process is handed its shares when it starts, not through a `multiprocessing.Pool`'s task queue: when a
share failed, the pool's task thread could be left writing the next share (megabytes) into a pipe that the
terminated processes no longer read, and `Pool.join` then waited for it forever (seen once, under Python 3.13).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import pickle
import queue
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from txnmon.core import backtest
from txnmon.core.backtest_shards import merge, shares_by_user, splittable
from txnmon.core.rules import RuleSet
from txnmon.core.scoring import Scorer
from txnmon.errors import TxnmonError

log = logging.getLogger("txnmon.jobs")

# below this many rows a process costs more than it saves: starting one and handing it its rows take about a
# second, a second of judging is some 15,000 rows
MIN_ROWS_PER_WORKER = 20_000
# shares per process: a share ends with a progress step, and the processes stay busy to the end
SHARES_PER_WORKER = 4
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
_POLL_S = 0.5  # how often a wait for findings checks that the processes are still there


class BacktestProcessError(TxnmonError):
    """A backtest process ended without handing back its findings."""


def available_cpus(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may use: its CPU affinity, and no more than a container's CPU quota (cgroup v2
    `cpu.max`, "QUOTA PERIOD" or "max PERIOD"), rounded up."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota to honour
    return cpus


def _judge_shares(jobs: list[tuple[int, list[dict[str, Any]]]], ruleset: RuleSet, model: Scorer | None,
                  out: Any) -> None:
    """One process: (index, findings) of each of its shares onto `out`, or (-1, (exception, traceback)) for the
    first that fails (the parent stops the others and raises it)."""
    try:
        for index, share in jobs:
            out.put((index, backtest.judge(share, ruleset, None, model)))
    except BaseException as exc:  # the parent raises it: nothing is lost in a process
        try:
            pickle.dumps(exc)
        except Exception:
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        out.put((-1, (exc, traceback.format_exc())))


def _next(out: Any, processes: list[Any]) -> tuple[int, Any]:
    """The next (index, findings) a process put, failing if every process has ended without putting it (a
    process killed, by the kernel's OOM killer for one)."""
    while True:
        try:
            return out.get(timeout=_POLL_S)  # type: ignore[no-any-return]
        except queue.Empty:
            ended = [p.exitcode for p in processes if p.exitcode is not None]
            if any(code != 0 for code in ended) or len(ended) == len(processes):
                try:  # what an ended process put before it ended is still read
                    return out.get(timeout=_POLL_S)  # type: ignore[no-any-return]
                except queue.Empty:
                    raise BacktestProcessError(f"a backtest process ended (exit codes {ended}) before its "
                                               "shares were judged") from None


def run_backtest(transactions: list[dict[str, Any]], ruleset: RuleSet, rejected: int = 0,
                 progress: Callable[[int, int], None] | None = None, model: Scorer | None = None,
                 workers: int = 1) -> backtest.BacktestResult:
    """`backtest.run_backtest` on up to `workers` processes, with the same result. One process (this one) when
    the rows are too few to be worth more, or the run cannot be split (`splittable`, said in the log)."""
    n = min(workers, len(transactions) // MIN_ROWS_PER_WORKER)
    why_not = splittable(transactions, ruleset.state.max_users) if n > 1 else "too few rows"
    if why_not is not None:
        if workers > 1:
            log.info("backtest in one process: %s", why_not)
        return backtest.run_backtest(transactions, ruleset, rejected, progress, model)
    shares = shares_by_user(transactions, n * SHARES_PER_WORKER)
    total, done = len(transactions), 0
    if progress is not None:
        progress(0, total)
    parts: list[backtest.Judged | None] = [None] * len(shares)
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    count = min(n, len(shares))
    processes = [context.Process(target=_judge_shares, daemon=True, name=f"txnmon-backtest-{k}",
                                 args=([(i, shares[i]) for i in range(k, len(shares), count)], ruleset, model, out))
                 for k in range(count)]
    finished = False
    try:
        for process in processes:
            process.start()
        for _ in shares:
            i, judged = _next(out, processes)
            if i < 0:
                exc, where = judged
                exc.add_note(f"in a backtest process:\n{where}")
                raise exc
            parts[i] = judged
            done += len(shares[i])
            if progress is not None:
                progress(done, total)
        finished = True
    finally:
        for process in processes if not finished else ():  # a failed share or Ctrl-C: the others stop now
            if process.is_alive():
                process.terminate()
        for process in processes:
            if process.pid is not None:
                process.join()
        out.close()
    # in share order: the merge does not depend on which process finished first
    merged = merge([part for part in parts if part is not None], ruleset.version,
                   model.version if model is not None else None)
    return backtest.measured(merged, transactions, rejected)
