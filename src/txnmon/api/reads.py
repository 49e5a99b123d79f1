"""The read side of `txnmon serve`: `POST /v1/decisions` (send one transaction, wait for the processor's
verdict), `GET /v1/decisions/{id}`, `GET /v1/alerts/{id}` and `GET /v1/cases/{id}`. Registered by
`build_app` (src/txnmon/api/app.py), behind the same keys and rate limits; what is read comes from
`ApiDeps` (src/txnmon/jobs/api_reads.py in production).

A waiting request holds no thread: it awaits a future that one poller per process resolves. The poller
reads every waiting transaction id at once (in the threadpool) each API_DECISION_POLL_MS, so 200 waiting
requests cost the same MongoDB reads as one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from txnmon.api import decisions, ingest, keys, limits, views
from txnmon.api.app import TRANSACTION_SCHEMA, ApiDeps, _read_body, error
from txnmon.errors import ServiceUnavailable, TxnmonError

log = logging.getLogger("txnmon.api")


@dataclass(frozen=True)
class Front:
    """What the read side shares with `POST /v1/transactions` (src/txnmon/api/app.py): the key and rate
    check, the ingest path (a re-sent transaction id is not sent twice), the ids this process accepted
    recently, and the idempotent answers."""

    admit: Callable[..., Awaitable[tuple[str, JSONResponse | None]]]  # (request, scope needed, *other scopes that do)
    ingest: Callable[[bytes], tuple[int, dict[str, Any]]]
    known: Callable[[str], bool]
    answers: limits.IdempotentAnswers


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    # stored documents carry datetimes (and the odd bytes): ISO text and hex, never a 500
    return JSONResponse(jsonable_encoder(body, custom_encoder={bytes: bytes.hex}), status_code=status,
                        headers=headers)


class VerdictWaiter:
    """Futures per transaction id, resolved by one polling task once the stored verdict is complete."""

    def __init__(self, read: Callable[[Sequence[str], bool], Any], interval_s: float) -> None:
        self._read, self._interval = read, interval_s
        self._waiting: dict[str, list[asyncio.Future[decisions.Stored]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def wait(self, transaction_id: str, timeout_s: float) -> decisions.Stored | None:
        """The complete stored verdict, or None once `timeout_s` has passed without it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[decisions.Stored] = loop.create_future()
        self._waiting.setdefault(transaction_id, []).append(future)
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._poll())
        try:
            return await asyncio.wait_for(future, max(0.0, timeout_s))
        except TimeoutError:
            return None
        finally:
            waiting = self._waiting.get(transaction_id, [])
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                self._waiting.pop(transaction_id, None)

    async def _poll(self) -> None:
        while self._waiting:
            ids = list(self._waiting)
            try:
                # the alerts a later transaction completed too, as GET reads: a repeat and a GET must agree
                found = await run_in_threadpool(self._read, ids, True)
            except Exception as exc:  # an outage (or a bug) must not end the poller: waiters end pending
                log.warning("reading verdicts failed: %s", exc)
                found = {}
            for transaction_id, stored in found.items():
                if decisions.is_final(*stored):
                    for future in self._waiting.pop(transaction_id, []):
                        if not future.done():
                            future.set_result(stored)
            if self._waiting:
                await asyncio.sleep(self._interval)


def _one_transaction(deps: ApiDeps, front: Front, body: bytes) -> tuple[tuple[str, str] | None, int, dict[str, Any]]:
    """Judge and send the body's one transaction: (its id and fingerprint, or None if refused; the ingest
    status and answer)."""
    s = deps.settings
    records = ingest.records_of(body, s.api_max_records)
    if len(records) != 1:
        raise ingest.BadBody(400, "one_transaction", f"a decision is about one transaction; this body has "
                                                     f"{len(records)} (send batches to /v1/transactions)")
    status, answer = front.ingest(body)
    ident = decisions.identity(records[0], zone=s.zone, now=deps.wall(), max_bytes=s.max_message_bytes)
    # another request of this process is still sending the same transaction: wait for its verdict too
    in_flight = status == 422 and all(r.get("reason") == "in_flight" for r in answer.get("rejected", ()))
    if status >= 400 and not in_flight:
        return None, status, answer
    return ident, status, answer


def register(app: FastAPI, deps: ApiDeps, front: Front) -> None:
    s = deps.settings
    waiter = VerdictWaiter(deps.read_verdicts, s.api_decision_poll_ms / 1000)

    @app.post("/v1/decisions", summary="Send one transaction and wait for the processor's verdict on it",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": TRANSACTION_SCHEMA}}}, "parameters": [{"name": "wait_ms", "in": "query", "required": False,
                                                                 "schema": {"type": "integer", "minimum": 0}}]},
              responses={200: {"description": "the verdict: approve, review or decline"},
                         202: {"description": "pending: not judged within wait_ms; GET the location later"},
                         400: {"description": "not one transaction"}, 401: {"description": "no valid key"},
                         409: {"description": "another transaction is stored under this id"},
                         413: {"description": "body too large"}, 422: {"description": "refused, naming the field"},
                         429: {"description": "rate limited"}, 503: {"description": "Kafka unavailable"}})
    async def post_decision(request: Request) -> JSONResponse:
        started = deps.clock()
        name, refused = await front.admit(request, keys.INGEST)
        if refused is not None:
            return refused
        try:
            wait_ms = decisions.wait_ms_of(request.query_params.get("wait_ms"), s.api_decision_wait_ms,
                                           s.api_decision_max_wait_ms)
        except decisions.BadParameter as exc:
            return error(422, "bad_parameter", str(exc))
        idem = request.headers.get("idempotency-key")
        idem_key = (f"{name}\x00decisions", idem or "")
        if idem is not None:
            first = front.answers.get(idem_key, deps.clock())
            if first is not None:
                return _json(first[1], first[0], {"Idempotent-Replayed": "true"})
        body = await _read_body(request, s.api_max_body_bytes)
        if body is None:
            return error(413, "too_large", f"the body is over {s.api_max_body_bytes} bytes")
        try:
            ident, status, answer = await run_in_threadpool(_one_transaction, deps, front, body)
        except ingest.BadBody as exc:
            return error(exc.status, exc.error, exc.reason)
        except ServiceUnavailable as exc:
            return error(503, "unavailable", f"Kafka did not acknowledge: {exc}", {"Retry-After": "5"})
        if ident is None:
            return _json(answer, status)
        transaction_id, fingerprint = ident
        stored = await waiter.wait(transaction_id, wait_ms / 1000 - (deps.clock() - started))
        if stored is None:
            url = decisions.location(transaction_id)
            return _json(decisions.pending(transaction_id, f"not judged within {wait_ms} ms; GET {url} for the "
                                                           "verdict"), 202, {"Location": url})
        if decisions.conflicts(stored[0], fingerprint):
            return error(409, "conflict", f"transaction {transaction_id!r} is stored with other content; this one "
                                          "goes to the DLQ as duplicate_id_conflict (use a new transaction_id)")
        verdict = decisions.verdict(*stored)
        if idem is not None:  # a verdict is final: a repeat gets it again (a pending answer is not kept)
            front.answers.put(idem_key, 200, jsonable_encoder(verdict), deps.clock())
        return _json(verdict)

    @app.get("/v1/decisions/{transaction_id:path}", summary="The processor's verdict on a transaction",
             responses={202: {"description": "pending: accepted here, not judged yet"},
                        404: {"description": "not stored, and not accepted by this process recently"}})
    async def get_decision(transaction_id: str, request: Request) -> JSONResponse:
        # a shop's ingest key follows the Location of its own pending answer; alerts and cases stay `read`
        _, refused = await front.admit(request, keys.READ, keys.INGEST)
        if refused is not None:
            return refused
        try:
            stored = (await run_in_threadpool(deps.read_verdicts, [transaction_id], True)).get(transaction_id)
        except TxnmonError as exc:
            log.warning("cannot read a verdict: %s", exc)
            return error(503, "unavailable", "cannot read the verdict: MongoDB is unavailable", {"Retry-After": "5"})
        if stored is not None and decisions.is_final(*stored):
            return _json(decisions.verdict(*stored))
        if stored is not None or front.known(transaction_id):
            url = decisions.location(transaction_id)
            return _json(decisions.pending(transaction_id, "accepted, not judged by the processor yet"), 202,
                         {"Location": url})
        return error(404, "not_found", f"no verdict on transaction {transaction_id!r}: the processor has not "
                                       "stored it, and this server did not accept it recently")

    def reader(kind: str, find: Callable[[str], Any],
               shown: Callable[[Any], Any]) -> Callable[[str, Request], Awaitable[JSONResponse]]:
        async def read(object_id: str, request: Request) -> JSONResponse:
            _, refused = await front.admit(request, keys.READ)
            if refused is not None:
                return refused
            try:
                found = await run_in_threadpool(find, object_id)
            except TxnmonError as exc:
                log.warning("cannot read %s %r: %s", kind, object_id, exc)
                return error(503, "unavailable", f"cannot read the {kind}: MongoDB is unavailable",
                             {"Retry-After": "5"})
            answer = None if found is None else shown(found)  # what an integration may see (views.py)
            if answer is None:
                return error(404, "not_found", f"no {kind} {object_id!r}")
            return _json(answer)
        return read

    app.get("/v1/alerts/{object_id:path}", summary="An alert: why it fired, its disposition and case",
            responses={404: {"description": "no such alert"}})(reader("alert", deps.find_alert, views.alert_answer))
    app.get("/v1/cases/{object_id:path}", summary="A case with its alerts",
            responses={404: {"description": "no such case"}})(reader("case", deps.find_case, views.case_answer))
