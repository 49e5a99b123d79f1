"""`txnmon notify`: bad arguments and a bad routes file are clear errors before anything is touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
TXNMON = str(Path(sys.executable).with_name("txnmon"))
# an address where nothing listens: the commands must fail before they would need a server
OFFLINE = {**os.environ, "MONGO_URI": "mongodb://127.0.0.1:9", "MONGO_TIMEOUT_MS": "200"}


def txnmon(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TXNMON, *args], env={**OFFLINE, **env}, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_resend_needs_ids_or_all_dead_but_not_both():
    for args in (["notify", "resend"], ["notify", "resend", "a|hook", "--all-dead"]):
        result = txnmon(*args)
        assert result.returncode == 2 and "give notification ids or --all-dead" in result.stderr, result.stderr


def test_a_bad_routes_file_stops_the_worker_naming_the_problem(tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text("destinations:\n  hook: {type: webhook, url_env: https://x.example/secret-token}\n")
    result = txnmon("notify", NOTIFY_ROUTES_FILE=str(routes))
    assert result.returncode == 1
    assert "invalid routes" in result.stderr and "destinations.hook" in result.stderr
    assert "secret-token" not in result.stderr  # the value is not echoed: it might be a real secret


def test_a_bad_config_value_is_refused():
    result = txnmon("notify", NOTIFY_MAX_ATTEMPTS="0")
    assert result.returncode == 2 and "NOTIFY_MAX_ATTEMPTS" in result.stderr
