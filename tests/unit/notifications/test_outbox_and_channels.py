"""The routes feed's reload without a restart, and the DAG notifier's event from a callback context."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from txnmon.airflow.notifier import failure_event
from txnmon.errors import QualityCheckFailed
from txnmon.notifications import routes as routing
from txnmon.notifications.outbox import RoutesFeed

FIRST = """version: "1"
destinations:
  hook: {type: webhook, url_env: TXNMON_NOTIFY_HOOK_URL, secret_env: TXNMON_NOTIFY_HOOK_SECRET}
routes:
  - {name: all, to: [hook]}
"""


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_routes_reload_when_the_file_changes_and_a_bad_edit_keeps_the_old_ones(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(FIRST)
    clock = Clock()
    feed = RoutesFeed(path, clock=clock)
    first = feed.routes.version
    edited = FIRST.replace('version: "1"', 'version: "2"')
    path.write_text(edited.replace("{name: all, to: [hook]}", "{name: all, min_severity: high, to: [hook]}"))
    os.utime(path, (1, 1))
    assert feed.maybe_reload().version == first  # checked at most every 2 s
    clock.t = 3.0
    second = feed.maybe_reload()
    assert second.version.startswith("2+") and second.routes[0].min_severity == "high"
    path.write_text("routes: [{name: x, to: [nowhere]}]")
    clock.t = 6.0
    assert feed.maybe_reload().version == second.version


def test_a_bad_routes_file_at_start_up_is_an_error(tmp_path):
    with pytest.raises(routing.RoutesError, match="cannot read routes file"):
        RoutesFeed(tmp_path / "missing.yaml")


def test_a_failed_quality_task_becomes_a_quality_event_with_a_natural_id():
    ti = SimpleNamespace(dag_id="data_quality", task_id="check", run_id="manual__1", try_number=2)
    event = failure_event({"ti": ti, "run_id": "manual__1",
                           "exception": QualityCheckFailed("critical expectations failed:\n  transactions: x")})
    assert event["kind"] == routing.QUALITY_FAILED
    assert event["event_id"] == "quality_failed:data_quality:manual__1:check"
    assert "critical expectations failed" in event["detail"] and event["title"].endswith("data_quality.check")
    other = failure_event({"ti": ti, "run_id": "manual__1", "exception": RuntimeError("boom")})
    assert other["kind"] == routing.DAG_FAILED and other["detail"] == "RuntimeError: boom"
    run = failure_event({"dag": SimpleNamespace(dag_id="kpi_rollups"), "run_id": "r9", "reason": "task_failure"})
    assert run["event_id"] == "dag_failed:kpi_rollups:r9" and run["detail"] == "task_failure"


def test_the_dags_quality_task_fails_a_failed_suite_without_retries_and_reports_the_suite(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from txnmon.airflow import tasks
    from txnmon.jobs import quality
    from txnmon.settings import load_settings

    monkeypatch.setattr(tasks, "task_settings", load_settings)

    def failed(settings, start, end):
        raise QualityCheckFailed("critical expectations failed:\n  transactions: x", frozenset({"transactions"}))

    monkeypatch.setattr(quality, "quality_interval", failed)
    with pytest.raises(AirflowFailException) as raised:  # Airflow's "fail now, skip the retries"
        tasks.quality(None, None)
    ti = SimpleNamespace(dag_id="data_quality", task_id="check", run_id="manual__1", try_number=1)
    event = failure_event({"ti": ti, "run_id": "manual__1", "exception": raised.value})
    assert event["kind"] == routing.QUALITY_FAILED and event["detail"].startswith("QualityCheckFailed: critical")

    def moving(settings, start, end):  # the pipeline suite's counters may agree minutes later: keep the retry
        raise QualityCheckFailed("critical expectations failed:\n  pipeline: x", frozenset({"pipeline", "alerts"}))

    monkeypatch.setattr(quality, "quality_interval", moving)
    with pytest.raises(QualityCheckFailed):
        tasks.quality(None, None)

    def away(settings, start, end):
        raise ConnectionError("mongodb away")

    monkeypatch.setattr(quality, "quality_interval", away)
    with pytest.raises(ConnectionError):  # anything else keeps the task's retries
        tasks.quality(None, None)


def test_a_secret_missing_from_the_workers_environment_is_a_retryable_failure_naming_the_variable():
    import datetime as dt

    from txnmon.errors import DeliveryFailed
    from txnmon.notifications.channels import deliver

    routes = routing.parse_routes(FIRST)
    [entry] = routing.outbox_entries([{"kind": routing.ALERT, "id": "T1:high_amount", "rule": "high_amount",
                                    "severity": "high"}], routes, dt.datetime(2025, 10, 1, tzinfo=dt.UTC))
    with pytest.raises(DeliveryFailed, match="URL variable TXNMON_NOTIFY_HOOK_URL is not set"):
        deliver(entry, routes.destinations["hook"], {}, dt.datetime(2025, 10, 1, tzinfo=dt.UTC))
    with pytest.raises(DeliveryFailed, match="secret variable TXNMON_NOTIFY_HOOK_SECRET is not set"):
        deliver(entry, routes.destinations["hook"], {"TXNMON_NOTIFY_HOOK_URL": "http://127.0.0.1:9/x"},
                dt.datetime(2025, 10, 1, tzinfo=dt.UTC))


def test_a_reload_that_names_a_refused_host_keeps_the_routes_in_force(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text(FIRST)
    clock = Clock()
    env = {"TXNMON_NOTIFY_HOOK_URL": "http://127.0.0.1:9/hook"}
    feed = RoutesFeed(path, clock=clock, allowed_hosts=("127.0.0.1",), env=env)
    first = feed.routes.version
    path.write_text(FIRST.replace("url_env: TXNMON_NOTIFY_HOOK_URL", "url_env: TXNMON_NOTIFY_OTHER_URL"))
    env["TXNMON_NOTIFY_OTHER_URL"] = "http://metadata.google.internal/computeMetadata/v1/"
    clock.t = 3.0
    assert feed.maybe_reload().version == first
    assert feed.routes.destinations["hook"].url_env == "TXNMON_NOTIFY_HOOK_URL"
    # and at start-up the same file is an error naming the destination and the field
    with pytest.raises(routing.RoutesError, match=r"destinations\.hook\.url_env: .* cloud metadata"):
        RoutesFeed(path, allowed_hosts=("127.0.0.1",), env=env)
