"""A backtest on several processes: the users in shares (src/txnmon/core/backtest_shards.py), each share
judged by its own process, the findings merged and measured as one run's.

Judging is pure Python, so one process judges on one core (about 65 s per million generated rows in
session 16, issue 29); shares of the users are independent, so `txnmon backtest` uses the machine's cores
(`--workers`). The processes are spawned, not forked: the caller may hold threads (a MongoDB client, the
progress display) whose locks a fork would copy mid-use. A share that fails, or Ctrl-C, ends the others at
once (the pool is terminated), instead of after every share queued.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from txnmon.core import backtest
from txnmon.core.backtest_shards import merge, shares_by_user, splittable
from txnmon.core.rules import RuleSet
from txnmon.core.scoring import Scorer

log = logging.getLogger("txnmon.jobs")

# below this many rows a process costs more than it saves: starting one and handing it its rows take about a
# second, a second of judging is some 15,000 rows
MIN_ROWS_PER_WORKER = 20_000
# shares per process: a share ends with a progress step, and the processes stay busy to the end
SHARES_PER_WORKER = 4
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


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


def _judge_share(job: tuple[int, list[dict[str, Any]], RuleSet, Scorer | None]) -> tuple[int, backtest.Judged]:
    index, share, ruleset, model = job
    return index, backtest.judge(share, ruleset, None, model)


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
    pool = multiprocessing.get_context("spawn").Pool(min(n, len(shares)))
    try:
        jobs = ((i, share, ruleset, model) for i, share in enumerate(shares))
        for i, judged in pool.imap_unordered(_judge_share, jobs):
            parts[i] = judged
            done += len(shares[i])
            if progress is not None:
                progress(done, total)
        pool.close()
    except BaseException:
        pool.terminate()  # a failed share or Ctrl-C: the others stop now, not after every queued share
        raise
    finally:
        pool.join()
    # in share order: the merge does not depend on which process finished first
    merged = merge([part for part in parts if part is not None], ruleset.version,
                   model.version if model is not None else None)
    return backtest.measured(merged, transactions, rejected)
