"""The notify worker's Prometheus metrics (NOTIFY_METRICS_PORT): deliveries by destination and outcome,
and how long each attempt took."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from txnmon.services.metrics import serve


class NotifyMetrics:
    """What a `txnmon notify` worker did: deliveries by destination and outcome, and how long they took."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.settled = Counter("txnmon_notifications", "Delivery attempts by outcome: sent, retry (failed, "
                               "scheduled again) or dead (dead-lettered)", ["destination", "outcome"], registry=r)
        self.seconds = Histogram("txnmon_notification_attempt_seconds", "Time of one delivery attempt",
                                 ["destination"], registry=r,
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))

    def observe(self, destination: str, outcome: str, seconds: float) -> None:
        self.settled.labels(destination, outcome).inc()
        self.seconds.labels(destination).observe(seconds)

    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        serve(self.registry, port, address, "NOTIFY_METRICS_PORT", "notify worker")
