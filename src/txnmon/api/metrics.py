"""Prometheus metrics of `txnmon serve`, in its own registry (several apps may run in one test process):
requests by route and status, records by outcome and rejection reason, the Kafka send's latency, the
requests a key's rate limit refused. `GET /metrics` serves them (src/txnmon/api/app.py).

Labels are bounded: the method (a standard HTTP method, else `other`: h11 accepts any token, and the
page is unauthenticated, so a client could otherwise mint series at will), the route's template (never
the raw path; `unmatched` for every path no route matches), the status, the contract's reason codes.
No key name, transaction id or user id is a label: the page shows counts, nothing about a client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from txnmon.core.records import Message

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
UNMATCHED = "unmatched"


def method_label(method: str) -> str:
    """The request's method as a label: one of the standard methods, else `other`."""
    return method if method in METHODS else "other"


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("txnmon_api_requests", "HTTP requests answered, by route template and status",
                                ["method", "route", "status"], registry=r)
        self.records = Counter("txnmon_api_records", "Records of POST /v1/transactions by outcome "
                               "(accepted, duplicate, rejected)", ["outcome"], registry=r)
        self.rejected = Counter("txnmon_api_records_rejected", "Records refused, by reason (the DLQ's codes, "
                                "in_flight, refused_by_kafka)", ["reason"], registry=r)
        self.rate_limited = Counter("txnmon_api_rate_limited", "Requests refused by a key's rate limit (429)",
                                    registry=r)
        self.send_seconds = Histogram(
            "txnmon_api_kafka_send_seconds", "One request's send to Kafka until its records are acknowledged",
            registry=r, buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        for outcome in ("accepted", "duplicate", "rejected"):
            self.records.labels(outcome)  # present at 0 from the start: a rate() needs the series

    def observe_answer(self, answer: Mapping[str, Any]) -> None:
        """Count one ingest answer's records."""
        self.records.labels("accepted").inc(len(answer.get("accepted", ())))
        self.records.labels("duplicate").inc(len(answer.get("duplicates", ())))
        rejected = answer.get("rejected", ())
        self.records.labels("rejected").inc(len(rejected))
        for record in rejected:
            self.rejected.labels(str(record.get("reason"))).inc()

    def observe_request(self, method: str, route: str, status: int) -> None:
        self.requests.labels(method_label(method), route, str(status)).inc()
        if status == 429:
            self.rate_limited.inc()

    def timed(self, send: Callable[[Sequence[Message]], list[int]]) -> Callable[[Sequence[Message]], list[int]]:
        """`send`, its duration observed whatever its outcome (an outage's timeouts show as slow sends)."""
        def timed_send(messages: Sequence[Message]) -> list[int]:
            started = time.perf_counter()
            try:
                return send(messages)
            finally:
                self.send_seconds.observe(time.perf_counter() - started)
        return timed_send

    def render(self) -> tuple[bytes, str]:
        """The exposition page and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestCounter:
    """ASGI middleware: each HTTP answer counted by method, route template and status. The route is the
    one the router matched (`scope["route"]`); a path no route matches counts as `unmatched`."""

    def __init__(self, app: Any, metrics: ApiMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [500]

        async def watching(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watching)
        finally:
            # the matched route's template (`/v1/decisions/{tx_id}`), never the path the client sent
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            self.metrics.observe_request(scope.get("method", ""), route, status[0])
