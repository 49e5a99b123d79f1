"""The FastAPI app of `txnmon serve`: API keys, the body limit, per-key rate limits, `POST /v1/transactions`,
`/healthz` and `/readyz`. Everything it talks to comes in `ApiDeps` (src/txnmon/api/server.py wires the real
Kafka producer and MongoDB; the unit tests an in-memory double), so this module holds no client.

Every answer is JSON; an error carries `error` (a code) and `reason` (for humans, naming the field).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from txnmon.api import decisions, ingest, keys, limits
from txnmon.api.metrics import ApiMetrics, RequestCounter
from txnmon.core.records import Message
from txnmon.errors import MessageRefused, ServiceUnavailable, TxnmonError
from txnmon.settings import Settings

log = logging.getLogger("txnmon.api")
# Ingest requests wait on Kafka in their own threads, and the probes run in theirs: a flood of requests
# waiting for acknowledgements never holds the threads /readyz needs (they shared Starlette's pool).
INGEST_THREADS = 16
READY_TIMEOUT_S = 5.0  # /readyz answers 503 when its probes take longer (each has its own 2 s budget)

TRANSACTION_SCHEMA = {"type": "object", "required": ["transaction_id", "user_id", "amount", "payment_method",
                                                     "location", "timestamp"],
                      "additionalProperties": True}
BODY_SCHEMA = {"oneOf": [TRANSACTION_SCHEMA, {"type": "object", "required": ["transactions"],
                                              "properties": {"transactions": {"type": "array",
                                                                              "items": TRANSACTION_SCHEMA}}}]}


@dataclass
class ApiDeps:
    """What the app talks to. `send` sends messages to the raw topic and returns the indexes Kafka did
    not acknowledge (raising KafkaUnavailable or MessageRefused like `kafka.ConfirmedSender.send`); `find_key`
    reads a key record by key id; each probe raises (or returns False) when its service is down."""

    settings: Settings
    send: Callable[[Sequence[Message]], list[int]]
    find_key: Callable[[str], Mapping[str, Any] | None]
    probes: Mapping[str, Callable[[], object]]
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    # the read side (src/txnmon/jobs/api_reads.py): stored verdicts by transaction id (True: also the alerts
    # later transactions completed), an alert, a case (None when absent); raise TxnmonError on an outage
    read_verdicts: Callable[[Sequence[str], bool], Mapping[str, decisions.Stored]] = field(
        default=lambda ids, about: {})
    find_alert: Callable[[str], Mapping[str, Any] | None] = field(default=lambda alert_id: None)
    find_case: Callable[[str], Mapping[str, Any] | None] = field(default=lambda case_id: None)
    metrics: ApiMetrics | None = None  # None: the app makes its own (GET /metrics)


def error(status: int, code: str, reason: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "reason": reason}, status_code=status, headers=dict(headers or {}))


class _KeyCache:
    """Key records by key id for a few seconds, so a request costs no MongoDB read (and a flood of wrong
    keys no more than one per key id and period)."""

    def __init__(self, find: Callable[[str], Mapping[str, Any] | None], ttl: float, clock: Callable[[], float]):
        self._find, self._ttl, self._clock = find, ttl, clock
        self._cache: dict[str, tuple[float, Mapping[str, Any] | None]] = {}
        self._lock = threading.Lock()

    def get(self, key_id: str) -> Mapping[str, Any] | None:
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        record = self._find(key_id)
        with self._lock:
            self._cache.pop(key_id, None)
            self._cache[key_id] = (now, record)
            while len(self._cache) > 100_000:  # the oldest lookups go first, not every valid key at once
                del self._cache[next(iter(self._cache))]
        return record


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it passes `limit` bytes (read no further: a huge body costs no memory)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(deps: ApiDeps) -> FastAPI:
    s = deps.settings
    ingesting = ThreadPoolExecutor(INGEST_THREADS, thread_name_prefix="txnmon-api-ingest")
    probing = ThreadPoolExecutor(2, thread_name_prefix="txnmon-api-probe")

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # each app owns its pools: a server (or a test) that stops the app lets their threads go too
        try:
            yield
        finally:
            ingesting.shutdown(wait=False, cancel_futures=True)
            probing.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="txnmon", version="1", description="Send transactions to txnmon over HTTP (docs/api.md).",
                  lifespan=lifespan)
    deps = _install_metrics(app, deps)
    buckets = limits.TokenBuckets(s.api_rate_per_second, s.api_rate_burst)
    recent = limits.RecentIds(s.api_dedup_seconds, s.api_dedup_max_ids)
    answers = limits.IdempotentAnswers(max(s.api_dedup_seconds, 60.0))
    key_cache = _KeyCache(deps.find_key, s.api_key_cache_seconds, deps.clock)

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, "http_error", str(exc.detail))

    @app.get("/healthz", summary="The process is up")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Kafka and MongoDB are reachable", responses={503: {"description": "one is not"}})
    async def readyz() -> JSONResponse:
        try:
            down = await asyncio.wait_for(_in(probing, _probe_all, deps.probes), READY_TIMEOUT_S)
        except TimeoutError:
            down = [f"probes (no answer in {READY_TIMEOUT_S:g}s)"]
        if down:
            return JSONResponse({"status": "unavailable", "error": "not_ready", "unavailable": down,
                                 "reason": f"not reachable: {', '.join(down)}"}, status_code=503)
        return JSONResponse({"status": "ready", "checked": sorted(deps.probes)})

    async def admit(request: Request, scope: str = keys.INGEST, *also: str) -> tuple[str, JSONResponse | None]:
        """The caller's key name, or the answer refusing the request: no or a wrong key (401), the key store
        down (503), a key with neither `scope` nor any of `also` (403), over the key's rate (429). Every /v1
        route starts here."""
        presented = _presented_key(request)
        if not presented:
            return "", error(401, "unauthorized", "an API key is required: Authorization: Bearer <key>")
        key_id = keys.key_id_of(presented)
        try:
            record = await run_in_threadpool(key_cache.get, key_id) if key_id else None
        except TxnmonError as exc:  # the store's own words (hosts, ports) go to the log, not to the caller
            log.warning("cannot check an API key: %s", exc)
            return "", error(503, "unavailable", "cannot check the key: the key store is unavailable",
                             {"Retry-After": "5"})
        if not keys.matches(presented, record):
            return "", error(401, "unauthorized", "the API key is not valid (unknown, revoked or mistyped)")
        name = str(record["_id"]) if record else ""
        if scope not in keys.scopes_of(record) and not set(also) & keys.scopes_of(record):
            return name, error(403, "forbidden", f"key {name!r} has no {scope!r} scope (it has: "
                                                 f"{', '.join(sorted(keys.scopes_of(record))) or 'none'}); "
                                                 f"`txnmon keys create NAME --scope {scope}` makes one that has")
        wait = buckets.take(name, deps.clock())
        if wait > 0:
            return name, error(429, "rate_limited", f"key {name!r}: more than {s.api_rate_per_second:g} requests/s",
                               {"Retry-After": limits.retry_after_header(wait)})
        return name, None

    @app.post("/v1/transactions", status_code=202, summary="Send one transaction or a batch to the raw topic",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": BODY_SCHEMA}}}},
              responses={200: {"description": "every record was a duplicate"}, 401: {"description": "no valid key"},
                         413: {"description": "body too large"}, 422: {"description": "no record accepted"},
                         429: {"description": "rate limited"}, 503: {"description": "Kafka unavailable"}})
    async def post_transactions(request: Request) -> JSONResponse:
        name, refused = await admit(request)
        if refused is not None:
            return refused
        idem = request.headers.get("idempotency-key")
        if idem is not None:
            first = answers.get((name, idem), deps.clock())
            if first is not None:
                return JSONResponse(first[1], status_code=first[0], headers={"Idempotent-Replayed": "true"})
        body = await _read_body(request, s.api_max_body_bytes)
        if body is None:
            return error(413, "too_large", f"the body is over {s.api_max_body_bytes} bytes")
        try:
            status, answer = await _in(ingesting, _ingest, deps, recent, body)
        except ingest.BadBody as exc:
            return error(exc.status, exc.error, exc.reason)
        except ServiceUnavailable as exc:
            return error(503, "unavailable", f"Kafka did not acknowledge: {exc}", {"Retry-After": "5"})
        if idem is not None and status < 500:
            answers.put((name, idem), status, answer, deps.clock())
        if deps.metrics is not None:
            deps.metrics.observe_answer(answer)
        return JSONResponse(answer, status_code=status)

    from txnmon.api import reads  # the read side's routes use this module's ApiDeps and error()

    reads.register(app, deps, reads.Front(admit=admit, ingest=lambda body: _ingest(deps, recent, body),
                                          known=lambda tx_id: recent.knows(tx_id, deps.clock()), answers=answers))
    return app


def _install_metrics(app: FastAPI, deps: ApiDeps) -> ApiDeps:
    """`GET /metrics` (Prometheus; no key, like the probes: it shows counts only, docs/api.md says where
    it is reachable), every answer counted, and the Kafka send timed. Returns the deps to use."""
    metrics = deps.metrics or ApiMetrics()
    app.add_middleware(RequestCounter, metrics=metrics)

    @app.get("/metrics", summary="Prometheus metrics of this process", include_in_schema=False)
    def prometheus_metrics() -> Response:
        page, content_type = metrics.render()
        return Response(page, media_type=content_type)

    return replace(deps, send=metrics.timed(deps.send), metrics=metrics)


async def _in(pool: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(pool, functools.partial(fn, *args))


def _probe_all(probes: Mapping[str, Callable[[], object]]) -> list[str]:
    """The names of the services whose probe failed (raised or returned False)."""
    down = []
    for name, probe in probes.items():
        try:
            ok = probe() is not False
        except Exception as exc:  # any failure of a probe means "not ready", never a 500
            log.warning("readiness: %s unreachable: %s", name, exc)
            ok = False
        if not ok:
            down.append(name)
    return down


def _ingest(deps: ApiDeps, recent: limits.RecentIds, body: bytes) -> tuple[int, dict[str, Any]]:
    """Judge, drop the duplicates, send the rest and wait for Kafka: (status, answer)."""
    s = deps.settings
    records, raws = ingest.read_body(body, s.api_max_records)
    judged = ingest.judge(records, zone=s.zone, now=deps.wall(), max_bytes=s.max_message_bytes, raws=raws)
    now = deps.clock()
    duplicates: list[str] = []
    claimed: list[tuple[int, str, Message]] = []
    rejected = list(judged.rejected)
    for item in judged.to_send:
        fresh = recent.claim(item[1], now)
        if fresh:
            claimed.append(item)
        elif fresh is False:
            duplicates.append(item[1])
        else:  # another request is still sending it: not sent twice, not called a duplicate either
            rejected.append({"index": item[0], "transaction_id": item[1], "reason": "in_flight", "field": None,
                             "detail": "another request is still sending this transaction; send it again shortly"})
    try:
        failed = set(deps.send([message for _, _, message in claimed])) if claimed else set()
    except MessageRefused as exc:
        failed = set(exc.failed)
        for i, why in exc.refused.items():
            index, tx_id, _ = claimed[i]
            rejected.append({"index": index, "transaction_id": tx_id, "reason": "refused_by_kafka", "field": None,
                             "detail": why})
            recent.release(tx_id)
        failed -= set(exc.refused)
    except TxnmonError:
        for _, tx_id, _ in claimed:
            recent.release(tx_id)
        raise
    for i in failed:
        recent.release(claimed[i][1])
    for i, (_, tx_id, _) in enumerate(claimed):
        if i not in failed:
            recent.confirm(tx_id)
    if failed:
        raise ServiceUnavailable(f"{len(failed)} of {len(claimed)} records were not acknowledged; send them again")
    refused = {r["index"] for r in rejected}
    accepted = [tx_id for index, tx_id, _ in claimed if index not in refused]
    return ingest.answer(accepted, duplicates, sorted(rejected, key=lambda r: r["index"]))
