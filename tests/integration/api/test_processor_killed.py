"""A processor SIGKILLed while `POST /v1/decisions` waits for its verdict: the request ends `pending` with a
Location, and once a new `txnmon stream` runs, GET on that Location gives the stream's verdict. Real broker,
MongoDB-wire server, `txnmon serve`'s app on a socket and `txnmon stream` as a process of its own.

The processor is frozen (SIGSTOP) before the decision is sent and killed while the request waits, so the
kill always lands before the transaction could be judged (without the freeze it races the judging). The
restarted member joins once the killed one's session expires (session.timeout.ms, 30 s): most of this
test's time is that wait.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from tests.fixtures.pipeline import T0, start_process, tx_row, wait_for
from txnmon.adapters.mongo import MongoStore
from txnmon.api.server import production_app
from txnmon.jobs import api_keys
from txnmon.settings import Settings

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _serving(settings: Settings) -> Iterator[None]:
    """`txnmon serve`'s production app on settings.api_port, in a thread, until the block ends."""
    app, store, sender = production_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.api_port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, 20, "the API server to start")
        yield
    finally:
        server.should_exit = True
        thread.join(10)
        sender.close(5)
        store.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def test_a_processor_killed_mid_request_ends_pending_then_the_restarted_one_gives_the_verdict(settings_factory):
    settings = settings_factory(api_port=_free_port(), api_decision_max_wait_ms=20_000)
    store = MongoStore(settings)
    key = api_keys.create(store, "it-killed", by="integration-test")  # a shop's key: ingest, and its verdicts
    first = start_process(settings)
    second = None
    try:
        with _serving(settings), httpx.Client(base_url=f"http://127.0.0.1:{settings.api_port}", timeout=60,
                                              headers={"Authorization": f"Bearer {key}"}) as http:
            history = [tx_row(f"HOME-{i}", "KILLED", T0 + dt.timedelta(hours=i), 1_000.0 + 50 * i) for i in range(3)]
            assert http.post("/v1/transactions", json={"transactions": history}).status_code == 202
            wait_for(lambda: http.get("/v1/decisions/HOME-2").status_code == 200, 120,
                     "the first processor to judge the user's history")

            first.send_signal(signal.SIGSTOP)  # frozen: it can no longer judge what comes next
            answer: list[httpx.Response] = []
            abroad = tx_row("KILLED-abroad", "KILLED", T0 + dt.timedelta(hours=14), 40_000.0, "London")
            request = threading.Thread(
                target=lambda: answer.append(http.post("/v1/decisions?wait_ms=4000", json=abroad)), daemon=True)
            request.start()
            # accepted by this server (sent to Kafka and acknowledged): GET answers 202 from then on, not 404
            wait_for(lambda: http.get("/v1/decisions/KILLED-abroad").status_code == 202, 10,
                     "the decision's transaction to be accepted")
            assert request.is_alive(), "the request must still be waiting when the processor is killed"
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            request.join(30)

            [pending] = answer
            assert pending.status_code == 202, pending.text
            assert pending.json()["decision"] == "pending"
            location = pending.headers["Location"]
            assert location == "/v1/decisions/KILLED-abroad"
            assert http.get(location).status_code == 202  # nobody judges it while no processor runs

            second = start_process(settings)
            started = time.monotonic()
            wait_for(lambda: http.get(location).status_code == 200, 150,
                     "the restarted processor's verdict on the pending transaction")
            restarted_s = time.monotonic() - started
            verdict = http.get(location).json()
            assert verdict["transaction_id"] == "KILLED-abroad"
            assert verdict["decision"] in ("review", "decline") and verdict["score"] > 0, verdict
            [hit] = [a for a in verdict["alerts"] if a["rule"] == "high_value_new_country"]
            assert "40,000" in hit["reason"] and hit["explanation"]
            print(f"verdict {restarted_s:.1f}s after the restart")  # mostly the killed member's session timeout
    finally:
        _stop(first)
        if second is not None:
            second.terminate()
            try:
                second.wait(30)
            except subprocess.TimeoutExpired:
                _stop(second)
        store.close()
