"""A backtest on several processes: the users in shares (src/txnmon/core/backtest_shards.py), each share
judged by its own process, the findings merged and measured as one run's.

Judging is pure Python, so one process judges on one core (about 65 s per million generated rows in
session 16, issue 29); shares of the users are independent, so `txnmon backtest` uses the machine's cores
(`--workers`). The processes are spawned, not forked: the caller may hold threads (a MongoDB client, the
progress display) whose locks a fork would copy mid-use.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
from collections.abc import Callable
from typing import Any

from txnmon.core import backtest
from txnmon.core.backtest_shards import merge, shares_by_user, splittable
from txnmon.core.rules import RuleSet
from txnmon.core.scoring import Scorer

# below this many rows a process costs more than it saves: starting one and handing it its rows take about a
# second, a second of judging is some 15,000 rows
MIN_ROWS_PER_WORKER = 20_000
# shares per process: a share ends with a progress step, and the processes stay busy to the end
SHARES_PER_WORKER = 4


def available_cpus() -> int:
    """The cores this process may run on (its affinity, where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_backtest(transactions: list[dict[str, Any]], ruleset: RuleSet, rejected: int = 0,
                 progress: Callable[[int, int], None] | None = None, model: Scorer | None = None,
                 workers: int = 1) -> backtest.BacktestResult:
    """`backtest.run_backtest` on up to `workers` processes, with the same result. One process (this one) when
    the rows are too few to be worth more, or the users too many to split (`splittable`)."""
    n = min(workers, len(transactions) // MIN_ROWS_PER_WORKER)
    if n <= 1 or not splittable(transactions, ruleset.state.max_users):
        return backtest.run_backtest(transactions, ruleset, rejected, progress, model)
    shares = shares_by_user(transactions, n * SHARES_PER_WORKER)
    total, done = len(transactions), 0
    if progress is not None:
        progress(0, total)
    with concurrent.futures.ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(backtest.judge, share, ruleset, None, model) for share in shares]
        for future in concurrent.futures.as_completed(futures):
            future.result()  # a failed share fails the backtest here, with its error
            if progress is not None:
                done += len(shares[futures.index(future)])
                progress(done, total)
        parts = [future.result() for future in futures]  # in share order: the merge does not depend on timing
    merged = merge(parts, ruleset.version, model.version if model is not None else None)
    return backtest.measured(merged, transactions, rejected)
