"""`txnmon status` against the real stack: the verdict follows the consumer group, the lag and the services."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.fixtures.pipeline import ROOT, TXNMON, env_for, produce, start_in_thread, synthetic_rows, wait_for
from txnmon.adapters.mongo import MongoStore
from txnmon.jobs import rollups

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def status(settings, *args: str, **env: str) -> tuple[int, dict]:
    result = subprocess.run([TXNMON, "status", "--json", *args], env=env_for(settings, **env), cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    return result.returncode, json.loads(result.stdout)


def test_status_is_unhealthy_while_no_processor_consumes_a_growing_backlog_and_healthy_with_one(isolated_settings):
    s = isolated_settings
    code, report = status(s, "--sample", "0")
    assert code == 0 and report["verdict"]["state"] == "degraded"  # nothing waiting, nobody consuming: a warning
    assert report["kafka"]["members"] == [] and report["kafka"]["lag"] == 0

    produce(s, synthetic_rows(60))
    code, report = status(s, "--sample", "0")
    assert code == 1 and report["verdict"]["state"] == "unhealthy"
    [problem] = report["verdict"]["problems"]
    assert problem["severity"] == "critical" and problem["check"] == "consumers"
    assert "while 60 message(s) wait" in problem["message"]
    lag = report["kafka"]["lag_by_topic"][s.topic_raw]
    assert len(lag) == 3 and sum(lag.values()) == 60  # per partition, all of it uncommitted

    # a member for the whole check (several `txnmon status` processes): stopped by request, not by idling
    processor, thread = start_in_thread(s, idle_s=600)
    try:
        wait_for(lambda: processor.batches > 0 and sum(
            status(s, "--sample", "0")[1]["kafka"]["lag_by_topic"][s.topic_raw].values()) == 0, 90, "the drain")
        code, report = status(s, "--sample", "0")
        assert code == 0 and [p["check"] for p in report["verdict"]["problems"]] == ["kpis"]  # stored, not rolled up
        rollups.run_rollups(MongoStore(s))
        code, report = status(s, "--sample", "1")
        assert code == 0, report["verdict"]
        assert report["verdict"]["state"] == "healthy", report["verdict"]
        assert report["kpis"]["pending_batches"] == 0 and report["kpis"]["last_run"]["as_of"]
        [member] = report["kafka"]["members"]
        assert {f"{s.topic_raw}[{p}]" for p in range(3)} <= set(member["partitions"])
        assert report["kafka"]["lag_by_topic"][s.topic_raw] == {"0": 0, "1": 0, "2": 0}
        # the by-user topic is written in Kafka transactions: its commit markers are no lag
        assert report["kafka"]["lag_by_topic"][s.topic_by_user] == {"0": 0, "1": 0, "2": 0}
        assert report["kafka"]["lag"] == 0
    finally:
        processor.request_stop()
        thread.join(60)
    # drained, then stopped: nothing waits, so no processor is a warning, not "messages wait" (critical)
    code, report = status(s, "--sample", "0")
    assert code == 0 and report["verdict"]["state"] == "degraded", report["verdict"]
    assert [(p["severity"], p["check"]) for p in report["verdict"]["problems"]] == [("warning", "consumers")]


def test_status_exits_non_zero_when_a_service_is_down(isolated_settings):
    code, report = status(isolated_settings, "--sample", "0", KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9")
    assert code == 1
    assert [(p["severity"], p["check"]) for p in report["verdict"]["problems"]] == [("critical", "kafka")]
    assert "error" in report["kafka"] and "version" in report["mongo"]  # MongoDB still answered
