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
Each sends its findings on a pipe of its own, so a process killed mid-send (the OOM killer) shows as the end
of its pipe, not as a wait on a lock or a message that never completes.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import pickle
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
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
# shares per process: a share ends with a progress step (the shares are dealt out in turn, and are of about
# one size: users are put in them by a hash of their id)
SHARES_PER_WORKER = 4
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


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
                  out: Connection) -> None:
    """One process: (index, findings) of each of its shares sent on `out`, or (-1, (exception, traceback)) for
    the first that fails (the parent stops the others and raises it)."""
    try:
        for index, share in jobs:
            out.send((index, backtest.judge(share, ruleset, None, model)))
    except BaseException as exc:  # the parent raises it: nothing is lost in a process
        try:
            pickle.loads(pickle.dumps(exc))  # some exceptions pickle but cannot be made again from it
        except Exception:
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        out.send((-1, (exc, traceback.format_exc())))
    finally:
        out.close()


def _findings(readers: list[Connection]) -> Iterator[tuple[int, Any]]:
    """Everything the processes send, as it comes, until each has closed its pipe (or ended: killed
    mid-send, its pipe ends inside a message, which ends it too)."""
    open_ = list(readers)
    while open_:
        for reader in wait(open_):
            try:
                yield reader.recv()  # type: ignore[union-attr]
            except EOFError:
                open_.remove(reader)  # type: ignore[arg-type]


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
    count = min(n, len(shares))
    processes, readers = [], []
    finished = False
    try:
        for k in range(count):
            reader, writer = context.Pipe(duplex=False)
            readers.append(reader)
            processes.append(context.Process(
                target=_judge_shares, daemon=True, name=f"txnmon-backtest-{k}",
                args=([(i, shares[i]) for i in range(k, len(shares), count)], ruleset, model, writer)))
            try:
                processes[-1].start()
            finally:
                writer.close()  # the process has its own: the pipe ends here when the process does
        for i, judged in _findings(readers):
            if i < 0:
                exc, where = judged
                exc.add_note(f"in a backtest process:\n{where}")
                raise exc
            parts[i] = judged
            done += len(shares[i])
            if progress is not None:
                progress(done, total)
        missing = parts.count(None)
        if missing:
            for process in processes:
                process.join()
            raise BacktestProcessError(f"backtest processes ended (exit codes {[p.exitcode for p in processes]}) "
                                       f"before judging {missing} of {len(shares)} shares")
        finished = True
    finally:
        for process in () if finished else processes:  # a failed share or Ctrl-C: the others stop now
            if process.is_alive():
                process.terminate()
        for process in processes:
            if process.pid is not None:
                process.join()
        for reader in readers:
            reader.close()
    # in share order: the merge does not depend on which process finished first
    merged = merge([part for part in parts if part is not None], ruleset.version,
                   model.version if model is not None else None)
    return backtest.measured(merged, transactions, rejected)
