"""Fault injection against the real stack: nothing lost, nothing duplicated.

Run alone with `make test-faults`; `make test` runs them too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.pipeline import (
    expected_alert_ids,
    produce,
    run_until_idle,
    start_process,
    stored_ids,
    synthetic_rows,
    wait_for,
)
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import REJECTED

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]

ROOT = Path(__file__).resolve().parents[3]


def _count(settings) -> int:
    return MongoStore(settings).count("transactions")


def test_sigkill_mid_stream_then_restart_loses_and_duplicates_nothing(isolated_settings):
    s = isolated_settings
    rows = synthetic_rows(12_000, users=200, seed=3)
    produce(s, rows)
    proc = start_process(s, BATCH_MAX_RECORDS="300")
    try:
        wait_for(lambda: _count(s) >= 1500, 120, "the first batches to be stored")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        at_kill = _count(s)
        assert 0 < at_kill < len(rows), "the kill should land mid-stream"
    finally:
        if proc.poll() is None:
            proc.kill()
    restarted = start_process(s, "--exit-when-idle", "4")
    out, _ = restarted.communicate(timeout=300)
    assert restarted.returncode == 0, out.decode()[-2000:]
    assert stored_ids(s, "transactions") == sorted(r["transaction_id"] for r in rows)
    assert set(stored_ids(s, "alerts")) == expected_alert_ids(rows, s)


def test_sigterm_finishes_the_batch_commits_and_exits_0(isolated_settings):
    s = isolated_settings
    rows = synthetic_rows(4000, users=50, seed=5)
    produce(s, rows)
    proc = start_process(s, BATCH_MAX_RECORDS="200")
    wait_for(lambda: _count(s) >= 400, 120, "some batches to be stored")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert b"stop requested" in out and b"processor stopped" in out
    # everything committed is stored: a restart picks up exactly where the first left off
    second = start_process(s, "--exit-when-idle", "4")
    out2, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out2.decode()[-2000:]
    assert stored_ids(s, "transactions") == sorted(r["transaction_id"] for r in rows)


def _private_stack(tmp_path: Path, port: int) -> dict[str, str]:
    return {**os.environ, "DEVSTACK_HOME": str(tmp_path / "stack"), "DEVSTACK_MONGO_PORT": str(port),
            "DEVSTACK_MONGO_HEAP": "-Xmx512m"}


def _stack(env: dict[str, str], *args: str) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "devstack" / "stack.py"), *args], env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr


def _outage(settings, env: dict[str, str], service: str, seed: int) -> str:
    """Run the processor over 6,000 transactions with `service` stopped for 20 s mid-run;
    check nothing is lost or duplicated; return the processor's log."""
    rows = synthetic_rows(6000, users=100, seed=seed)
    produce(settings, rows)
    proc = start_process(settings, "--exit-when-idle", "8", BATCH_MAX_RECORDS="200")
    wait_for(lambda: _count(settings) >= 600, 120, "some batches to be stored")
    _stack(env, "down", service)
    time.sleep(20)
    assert proc.poll() is None, f"the processor must wait for {service}, not exit"
    _stack(env, "up", service)
    try:
        out, _ = proc.communicate(timeout=200)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"the processor did not finish after {service} came back:\n"
                             + out.decode()[-4000:]) from None
    log = out.decode()
    assert proc.returncode == 0, log[-3000:]
    assert stored_ids(settings, "transactions") == sorted(r["transaction_id"] for r in rows)
    assert set(stored_ids(settings, "alerts")) == expected_alert_ids(rows, settings)
    return log


def test_mongodb_down_for_20s_mid_run_backs_off_and_loses_nothing(settings_factory, tmp_path):
    port = 27131
    env = _private_stack(tmp_path, port)
    _stack(env, "up", "mongo")
    try:
        s = settings_factory(mongo_uri=f"mongodb://127.0.0.1:{port}", mongo_timeout_ms=2000)
        log = _outage(s, env, "mongo", seed=9)
        assert "mongodb unavailable" in log and "retrying the batch" in log
    finally:
        _stack(env, "down", "mongo")


def test_kafka_broker_down_for_20s_mid_run_loses_nothing(settings_factory, tmp_path):
    env = {**os.environ, "DEVSTACK_HOME": str(tmp_path / "kstack"), "DEVSTACK_KAFKA_PORT": "19292",
           "DEVSTACK_KAFKA_CONTROLLER_PORT": "19293", "DEVSTACK_KAFKA_HEAP": "-Xmx512m"}
    _stack(env, "up", "kafka")
    try:
        _outage(settings_factory(kafka_bootstrap_servers="127.0.0.1:19292"), env, "kafka", seed=13)
    finally:
        _stack(env, "down", "kafka")


def test_poison_messages_interleaved_with_10000_valid_ones(isolated_settings):
    from tests.integration.pipeline.test_processor import HOSTILE

    s = isolated_settings
    rows = synthetic_rows(10_000, users=300, seed=21)
    messages: list = []
    for i, row in enumerate(rows):
        messages.append(row)
        if i % 50 == 0:
            key, value, _ = HOSTILE[(i // 50) % len(HOSTILE)]
            messages.append((key, value))
    poison = len(messages) - len(rows)
    produce(s, messages)
    proc = start_process(s, "--exit-when-idle", "5")
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert stored_ids(s, "transactions") == sorted(r["transaction_id"] for r in rows)
    assert MongoStore(s).count(REJECTED) == poison
    assert set(stored_ids(s, "alerts")) == expected_alert_ids(rows, s)


def test_a_member_joins_and_another_leaves_mid_run(settings_factory):
    s = settings_factory(batch_max_records=200)
    rows = synthetic_rows(8_000, users=200, seed=23)
    produce(s, rows)
    first = start_process(s)
    wait_for(lambda: _count(s) >= 1000, 120, "the first member to make progress")
    second = start_process(s, "--exit-when-idle", "6")
    time.sleep(4)  # a rebalance moves partitions to the newcomer
    first.send_signal(signal.SIGTERM)  # and the first one leaves
    out1, _ = first.communicate(timeout=60)
    assert first.returncode == 0, out1.decode()[-2000:]
    out2, _ = second.communicate(timeout=400)
    assert second.returncode == 0, out2.decode()[-2000:]
    assert b"partitions assigned" in out2
    assert stored_ids(s, "transactions") == sorted(r["transaction_id"] for r in rows)
    assert set(stored_ids(s, "alerts")) == expected_alert_ids(rows, s)


def test_the_same_file_replayed_twice_changes_no_document_alert_or_rollup(isolated_settings, tmp_path):
    from txnmon.jobs import replay, rollups
    from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

    s = isolated_settings
    data = tmp_path / "day.csv"
    write_csv(generate(GeneratorSpec(rows=3_000, users=300, seed=25)), data)
    db = MongoStore(s)

    def snapshot() -> dict:
        return {name: sorted(db.find(name), key=lambda d: d["_id"]) for name in rollups.ROLLUP_NAMES}

    replay.replay_csv(s, data)
    run_until_idle(s)
    rollups.run_rollups(db, full_rebuild=True)
    first = (stored_ids(s, "transactions"), stored_ids(s, "alerts"), snapshot())
    replay.replay_csv(s, data)
    run_until_idle(s)
    rollups.run_rollups(db, full_rebuild=True)
    assert (stored_ids(s, "transactions"), stored_ids(s, "alerts"), snapshot()) == first
    assert len(first[0]) == 3_000
