"""The dev stack's lifecycle: a second, throw-away stack on other ports, so the stack the rest
of the suite uses is never touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
STACK = [sys.executable, str(ROOT / "devstack" / "stack.py")]


def _stack(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*STACK, *args], env=env, capture_output=True, text=True, timeout=180)


def test_up_is_idempotent_down_stops_only_its_own_and_data_survives_a_restart(tmp_path: Path):
    env = {
        **os.environ,
        "DEVSTACK_HOME": str(tmp_path / "stack"),
        "DEVSTACK_KAFKA_PORT": "19092",
        "DEVSTACK_KAFKA_CONTROLLER_PORT": "19093",
        "DEVSTACK_MONGO_PORT": "27118",
        "DEVSTACK_KAFKA_HEAP": "-Xmx512m",
        "DEVSTACK_MONGO_HEAP": "-Xmx512m",
    }
    settings = load_settings(kafka_bootstrap_servers="127.0.0.1:19092", mongo_uri="mongodb://127.0.0.1:27118",
                             mongo_db="lifecycle", topic_raw="lifecycle.raw")
    try:
        first = _stack(env, "up")
        assert first.returncode == 0, first.stderr
        assert "kafka is up" in first.stdout and "mongo is up" in first.stdout

        second = _stack(env, "up")
        assert second.returncode == 0
        assert "already running" in second.stdout and "starting" not in second.stdout

        status = _stack(env, "status")
        assert status.returncode == 0
        assert "kafka  up" in status.stdout and str(tmp_path / "stack" / "logs") in status.stdout

        kafka.ensure_topics(settings)
        producer = kafka.make_producer(settings)
        kafka.send_all(producer, settings.topic_raw, [(b"U1", b"{}")] * 5)
        producer.close()
        db = MongoStore(settings)
        db.insert_missing("transactions", [{"_id": "T1", "amount": 1.0}])
        kafka_pid = int((tmp_path / "stack" / "run" / "kafka.pid").read_text().split()[0])

        down = _stack(env, "down")
        assert down.returncode == 0, down.stderr
        assert not Path(f"/proc/{kafka_pid}").exists()
        assert _stack(env, "status").returncode != 0

        assert _stack(env, "up").returncode == 0
        assert sum(kafka.end_offsets(settings, settings.topic_raw).values()) == 5
        assert MongoStore(settings).find_one("transactions", {"_id": "T1"})["amount"] == 1.0
    finally:
        _stack(env, "down")


def test_port_taken_by_a_stranger_is_reported(tmp_path: Path):
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = {**os.environ, "DEVSTACK_HOME": str(tmp_path / "s"), "DEVSTACK_KAFKA_PORT": str(port),
               "DEVSTACK_MONGO_PORT": "27119", "DEVSTACK_KAFKA_CONTROLLER_PORT": "19193"}
        result = _stack(env, "up")
        _stack(env, "down")
    assert result.returncode == 1
    assert f"port 127.0.0.1:{port} is taken" in result.stderr
