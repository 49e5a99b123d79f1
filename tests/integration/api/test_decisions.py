"""`POST /v1/decisions` over a real socket, on the real broker, MongoDB-wire server and processor: with no
processor a decision is pending within its deadline and GET /v1/decisions/{id} gives the verdict once one
runs; the seed report's example (40,000 from a new country, far above the user's usual) is a review with
the alert's explanation; a purchase at home is an approve."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from tests.fixtures.pipeline import T0, start_in_thread, tx_row, wait_for
from txnmon.adapters.mongo import MongoStore
from txnmon.api.server import production_app
from txnmon.jobs import api_keys

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def test_decisions_pending_without_a_processor_then_the_streams_verdicts(settings_factory):
    settings = settings_factory(api_port=_free_port(), api_decision_max_wait_ms=20_000)
    store = MongoStore(settings)
    key = api_keys.create(store, "it-decide", by="integration-test", scopes=["ingest", "read"])
    shop_key = api_keys.create(store, "it-decide-shop", by="integration-test")  # ingest only, the default
    app, api_store, sender = production_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.api_port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    processor = None
    try:
        wait_for(lambda: server.started, 20, "the API server to start")
        with httpx.Client(base_url=f"http://127.0.0.1:{settings.api_port}", timeout=60,
                          headers={"Authorization": f"Bearer {key}"}) as http:
            # no processor yet: pending within the deadline, and GET says pending too
            started = time.monotonic()
            r = http.post("/v1/decisions?wait_ms=300", json=tx_row("HOME-early", "USUAL", _at(-1), 700.0))
            assert r.status_code == 202 and r.json()["decision"] == "pending", r.text
            assert time.monotonic() - started < 3.0
            assert http.get(r.headers["Location"]).status_code == 202
            history = [tx_row(f"USUAL-{i}", "USUAL", _at(i), 1_000.0 + 50 * i) for i in range(3)]
            assert http.post("/v1/transactions", json={"transactions": history}).status_code == 202

            processor, _ = start_in_thread(settings, idle_s=120)
            wait_for(lambda: http.get("/v1/decisions/HOME-early").status_code == 200, 90,
                     "the verdict on the early transaction once the processor runs")
            assert http.get("/v1/decisions/HOME-early").json()["decision"] == "approve"
            wait_for(lambda: http.get("/v1/decisions/USUAL-2").status_code == 200, 60, "the history to be judged")

            abroad = http.post("/v1/decisions?wait_ms=20000", json=tx_row("USUAL-abroad", "USUAL", _at(14), 40_000.0,
                                                                          "London"))
            assert abroad.status_code == 200, abroad.text
            verdict = abroad.json()
            assert verdict["decision"] in ("review", "decline") and verdict["score"] > 0
            assert verdict["rules_version"]
            [hit] = [a for a in verdict["alerts"] if a["rule"] == "high_value_new_country"]
            assert "40,000" in hit["reason"] and hit["explanation"]

            home = http.post("/v1/decisions?wait_ms=20000", json=tx_row("USUAL-home", "USUAL", _at(15), 900.0))
            assert (home.status_code, home.json()["decision"], home.json()["alerts"]) == (200, "approve", [])

            alert = http.get(f"/v1/alerts/{hit['alert_id']}")
            assert alert.status_code == 200 and alert.json()["alert"]["transaction_id"] == "USUAL-abroad"
            assert http.get("/v1/alerts/no-such-alert").status_code == 404
            shop = {"Authorization": f"Bearer {shop_key}"}  # a checkout's key: verdicts yes, alerts and cases no
            assert http.get(f"/v1/alerts/{hit['alert_id']}", headers=shop).status_code == 403
            assert http.get("/v1/decisions/USUAL-home", headers=shop).json()["decision"] == "approve"
    finally:
        if processor is not None:
            processor.request_stop()
        server.should_exit = True
        thread.join(10)
        sender.close(5)
        api_store.close()
        store.close()
