"""`txnmon serve` over a real socket, on the real broker and MongoDB-wire server: a valid batch is 202 and
on the raw topic, a bad record 422 naming the field, a wrong key 401, a flood 429, readiness 200."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn

from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.api.server import production_app
from txnmon.core.collection_names import API_KEYS
from txnmon.jobs import api_keys, audit

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tx(i: int, **fields: object) -> dict[str, object]:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    return {"transaction_id": f"api-{i}", "user_id": f"u{i % 3}", "amount": 12.5 + i, "payment_method": "card",
            "location": "Paris", "timestamp": at.isoformat(), **fields}


def test_serve_over_a_socket_with_real_kafka_and_mongodb(settings_factory):
    settings = settings_factory(api_port=_free_port(), api_rate_burst=4, api_rate_per_second=0.2)
    store = MongoStore(settings)
    key = api_keys.create(store, "it-shop", by="integration-test")
    assert key not in json.dumps(store.find(API_KEYS, {}), default=str)  # only the salted hash is stored
    assert [e["action"] for e in audit.entries(store, target="apikey:it-shop")] == ["apikey.create"]

    app, api_store, sender = production_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=settings.api_port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        url = f"http://127.0.0.1:{settings.api_port}"
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
            assert http.get("/readyz").json()["status"] == "ready"

            batch = [_tx(i) for i in range(5)]
            r = http.post("/v1/transactions", json={"transactions": batch})
            assert r.status_code == 202, r.text
            assert r.json()["accepted"] == [t["transaction_id"] for t in batch]

            on_topic = [rec for p in range(settings.topic_partitions)
                        for rec in kafka.read_partition(settings, settings.topic_raw, p)]
            assert sorted(json.loads(rec.value)["transaction_id"] for rec in on_topic) == sorted(r.json()["accepted"])

            r = http.post("/v1/transactions", json=_tx(9, amount="lots"))
            assert r.status_code == 422 and r.json()["rejected"][0]["field"] == "amount"

            wrong = http.post("/v1/transactions", json=_tx(10), headers={"Authorization": f"Bearer {key[:-2]}xx"})
            assert wrong.status_code == 401 and wrong.json()["reason"]

            statuses = [http.post("/v1/transactions", json=_tx(20 + i)).status_code for i in range(6)]
            assert 429 in statuses
            flood = http.post("/v1/transactions", json=_tx(30))
            assert flood.status_code == 429 and int(flood.headers["Retry-After"]) >= 1

            metrics = dict(line.rsplit(" ", 1) for line in http.get("/metrics").text.splitlines()
                           if line and not line.startswith("#"))
            accepted = float(metrics['txnmon_api_records_total{outcome="accepted"}'])
            assert accepted == float(metrics["txnmon_api_kafka_send_seconds_count"]) + 4  # the batch of 5, then 1s
            assert float(metrics["txnmon_api_rate_limited_total"]) == statuses.count(429) + 1
    finally:
        server.should_exit = True
        thread.join(10)
        sender.close(5)
        api_store.close()
        store.close()
