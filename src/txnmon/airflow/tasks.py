"""One function per DAG task. Each builds its settings from the Airflow connections (no global is
changed, so two tasks in one worker cannot see each other's), calls one job and returns its summary.
The jobs are imported when the task runs: a DAG file that imports this module parses in milliseconds.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from txnmon.airflow.connections import task_settings
from txnmon.errors import QualityCheckFailed


def replay(params: dict[str, Any]) -> dict[str, Any]:
    """replay_transactions: a checked file, or a window of the raw topic."""
    from txnmon.jobs import replay as replay_jobs

    return replay_jobs.run_replay(task_settings(), params)


def rollup(full_rebuild: bool) -> dict[str, Any]:
    """kpi_rollups.rollup: the pending hours (or every hour)."""
    from txnmon.jobs import rollups as rollup_jobs

    return rollup_jobs.rollup_pending(task_settings(), full_rebuild, trigger="airflow")


def signals() -> dict[str, Any]:
    """kpi_rollups.signals: the closed 5-minute buckets."""
    from txnmon.jobs import business_signals as signal_jobs

    return signal_jobs.signals_task(task_settings(), trigger="airflow")


def backtest(candidate_rules: str, hours: float) -> dict[str, Any]:
    """backtest_rules: candidate rules against the rules in use over stored history."""
    from txnmon.jobs import backtest as backtest_jobs

    return backtest_jobs.backtest_stored(task_settings(), candidate_rules, hours)


def model_drift(end: dt.datetime) -> dict[str, Any]:
    """data_quality.model_drift: the promoted model's scores of the last complete UTC day against its
    reference, once per version and day; a drifted score is queued as a notification, the task succeeds."""
    from txnmon.jobs import drift as drift_jobs

    return drift_jobs.drift_task(task_settings(), end)


def train_model(data: str, test_data: str | None) -> dict[str, Any]:
    """train_risk_model: a model trained on labelled files inside DATA_DIR and registered, not promoted."""
    from txnmon.jobs import models as model_jobs

    return model_jobs.train_task(task_settings(), data, test_data)


def quality(start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """data_quality: the interval through the suites. A suite over stored rows that fails critically
    fails the task at once, without retries (AirflowFailException, the suite's failure as its cause)."""
    from airflow.sdk.exceptions import AirflowFailException

    from txnmon.jobs import quality as quality_jobs

    try:
        return quality_jobs.quality_interval(task_settings(), start, end)
    except QualityCheckFailed as exc:
        if quality_jobs.fails_for_good(exc):
            raise AirflowFailException(str(exc)) from exc
        raise
