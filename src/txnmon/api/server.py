"""`txnmon serve`: the app of src/txnmon/api/app.py wired to the real services (one idempotent producer
for the raw topic, each request waiting for its own acknowledgements: `kafka.ConfirmedSender`; the
MongoDB store for the keys and readiness) and run on Uvicorn."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import uvicorn
from fastapi import FastAPI

from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.api.app import ApiDeps, build_app
from txnmon.core.records import Message
from txnmon.jobs import api_keys, api_reads
from txnmon.settings import Settings

log = logging.getLogger("txnmon.api")
PROBE_TIMEOUT_S = 2.0


def production_app(settings: Settings) -> tuple[FastAPI, MongoStore, kafka.ConfirmedSender]:
    """The app on real Kafka and MongoDB, with the clients to close when the server stops."""
    # each request waits for its own records' acknowledgements only (not a flush of every request's)
    sender = kafka.ConfirmedSender(settings, timeout_s=settings.api_send_timeout_seconds,
                                   **{"client.id": "txnmon-api", "linger.ms": 2})
    store = MongoStore(settings)

    def send(messages: Sequence[Message]) -> list[int]:
        return sender.send(settings.topic_raw, messages)

    deps = ApiDeps(settings=settings, send=send,
                   find_key=lambda key_id: api_keys.find_by_key_id(store, key_id),
                   probes={"kafka": lambda: sender.check_reachable(PROBE_TIMEOUT_S),
                           "mongodb": store.ping},
                   read_verdicts=lambda ids, about: api_reads.stored_verdicts(store, ids, about=about),
                   find_alert=lambda alert_id: api_reads.find_alert(store, alert_id),
                   find_case=lambda case_id: api_reads.find_case(store, case_id))
    return build_app(deps), store, sender


def serve(settings: Settings) -> None:
    """Serve until interrupted (SIGINT/SIGTERM), then deliver what is queued and close the store."""
    app, store, sender = production_app(settings)
    log.info("txnmon API on http://%s:%d (docs at /docs)", settings.api_host, settings.api_port)
    try:
        uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning")
    finally:
        sender.close(10)
        store.close()
