"""The verdict of `txnmon status`: pure, from two samples of what the services said.

`judge(observation)` turns plain numbers into problems with a severity. A `critical` problem makes
the pipeline unhealthy (exit code 1, for cron or a probe); a `warning` is reported but the exit code
stays 0. No clock and no I/O here: the job takes the samples and passes `now` in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

CRITICAL = "critical"
WARNING = "warning"

Lag = dict[str, dict[int, int]]  # topic -> partition -> messages not yet committed by the group


@dataclass(frozen=True)
class Thresholds:
    kpi_stale_after: dt.timedelta = dt.timedelta(minutes=15)  # three missed 5-minute rollup runs
    dlq_rate_warning: float = 0.05  # DLQ messages per raw message during the sample
    notify_overdue_after: dt.timedelta = dt.timedelta(minutes=5)  # a due notification nobody delivered


@dataclass(frozen=True)
class Observation:
    """Two samples `interval_s` apart (one sample: `interval_s` 0, first == last)."""

    now: dt.datetime
    interval_s: float = 0.0
    kafka_error: str | None = None
    mongo_error: str | None = None
    group: str = ""
    members: int = 0
    lag_first: Lag = field(default_factory=dict)
    lag_last: Lag = field(default_factory=dict)
    raw_first: int = 0  # messages ever written to the raw topic (sum of end offsets)
    raw_last: int = 0
    dlq_first: int = 0
    dlq_last: int = 0
    kpi_as_of: dt.datetime | None = None  # every batch stored before this is in the kpi_* collections
    kpi_pending: int | None = None  # stored batches no rollup run has consumed yet (None: unknown)
    notify_dead: int | None = None  # dead-lettered notifications (None: unknown)
    notify_oldest_due: dt.datetime | None = None  # the earliest next_attempt_at of a pending notification


@dataclass(frozen=True)
class Problem:
    severity: str
    check: str
    message: str


@dataclass(frozen=True)
class Verdict:
    problems: tuple[Problem, ...]

    @property
    def healthy(self) -> bool:
        return not any(p.severity == CRITICAL for p in self.problems)

    @property
    def state(self) -> str:
        if not self.healthy:
            return "unhealthy"
        return "degraded" if self.problems else "healthy"

    @property
    def exit_code(self) -> int:
        return 0 if self.healthy else 1

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "healthy": self.healthy,
                "problems": [{"severity": p.severity, "check": p.check, "message": p.message} for p in self.problems]}


def total(lag: Lag) -> int:
    return sum(n for parts in lag.values() for n in parts.values())


def lag_growth(obs: Observation) -> int:
    return total(obs.lag_last) - total(obs.lag_first)


def judge(obs: Observation, limits: Thresholds | None = None) -> Verdict:
    limits = limits or Thresholds()
    problems: list[Problem] = []
    if obs.kafka_error is not None:
        problems.append(Problem(CRITICAL, "kafka", f"Kafka unreachable: {obs.kafka_error}"))
    if obs.mongo_error is not None:
        problems.append(Problem(CRITICAL, "mongodb", f"MongoDB unreachable: {obs.mongo_error}"))
    if obs.kafka_error is None:
        problems.extend(_consumers(obs))
        problems.extend(_dlq(obs, limits))
    if obs.mongo_error is None:
        problems.extend(_kpis(obs, limits))
        problems.extend(_notifications(obs, limits))
    return Verdict(tuple(problems))


def _consumers(obs: Observation) -> list[Problem]:
    waiting, grew = total(obs.lag_last), lag_growth(obs)
    growth = f", up {grew:,} in {obs.interval_s:g}s" if obs.interval_s > 0 and grew > 0 else ""
    if obs.members == 0 and waiting > 0:
        return [Problem(CRITICAL, "consumers",
                        f"no processor is a member of group {obs.group} while {waiting:,} message(s) wait{growth} "
                        "(start one: `txnmon stream`)")]
    if obs.members == 0:
        return [Problem(WARNING, "consumers", f"no processor is a member of group {obs.group} (nothing waiting)")]
    if obs.interval_s > 0 and grew > 0 and all(
            obs.lag_last.get(t, {}).get(p, 0) >= n for t, parts in obs.lag_first.items() for p, n in parts.items()):
        return [Problem(WARNING, "consumers",
                        f"lag grew by {grew:,} in {obs.interval_s:g}s with {obs.members} member(s): falling behind")]
    return []


def _dlq(obs: Observation, limits: Thresholds) -> list[Problem]:
    dlq, raw = obs.dlq_last - obs.dlq_first, obs.raw_last - obs.raw_first
    if dlq <= 0:
        return []
    rate = dlq / raw if raw > 0 else 1.0
    if rate <= limits.dlq_rate_warning:
        return []
    return [Problem(WARNING, "dlq", f"{dlq:,} message(s) rejected to the DLQ in {obs.interval_s:g}s "
                                    f"({rate:.0%} of {raw:,} new raw message(s)); see `txnmon dlq list`")]


def _kpis(obs: Observation, limits: Thresholds) -> list[Problem]:
    if not obs.kpi_pending:
        return []
    if obs.kpi_as_of is None:
        return [Problem(WARNING, "kpis", f"no rollup run yet; {obs.kpi_pending:,} stored batch(es) waiting "
                                         "(`txnmon rollups` or the kpi_rollups DAG)")]
    age = obs.now - obs.kpi_as_of
    if age > limits.kpi_stale_after:
        return [Problem(WARNING, "kpis", f"KPIs are {_ago(age)} old with {obs.kpi_pending:,} stored batch(es) "
                                         "waiting: is the kpi_rollups DAG running?")]
    return []


def _ago(age: dt.timedelta) -> str:
    s = int(age.total_seconds())
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _notifications(obs: Observation, limits: Thresholds) -> list[Problem]:
    out = []
    if obs.notify_dead:
        out.append(Problem(WARNING, "notifications",
                           f"{obs.notify_dead:,} notification(s) dead-lettered: see `txnmon notify --list-dead`, "
                           "re-send with `txnmon notify resend`"))
    if obs.notify_oldest_due is not None and obs.now - obs.notify_oldest_due > limits.notify_overdue_after:
        late = _ago(obs.now - obs.notify_oldest_due)
        out.append(Problem(WARNING, "notifications", f"a notification has been due for {late}: "
                                                     "is `txnmon notify` running?"))
    return out
