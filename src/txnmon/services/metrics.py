"""Prometheus metrics of one processor (and of one `txnmon events` member) in its own registry (several may
run in one test process), and `serve`, which the notify worker's metrics use too."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

from txnmon.errors import ConfigError


class ProcessorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.consumed = Counter("txnmon_messages_consumed", "Messages read from the raw topic", registry=r)
        self.stored = Counter("txnmon_transactions_stored", "Transactions newly written to MongoDB", registry=r)
        self.late = Counter("txnmon_transactions_late", "Transactions far behind the event-time watermark",
                            registry=r)
        self.duplicates = Counter("txnmon_transactions_duplicate",
                                  "Redelivered transactions already stored (left unchanged)", registry=r)
        self.dlq = Counter("txnmon_messages_dlq", "Messages rejected to the DLQ", ["reason"], registry=r)
        self.alerts = Counter("txnmon_alerts", "Alerts raised", ["rule"], registry=r)
        self.suppressed = Counter("txnmon_alerts_suppressed", "Repeat alerts folded into an earlier one",
                                  ["rule"], registry=r)
        self.shadow = Counter("txnmon_shadow_hits", "Hits of shadow-mode rules (not raised)", ["rule"], registry=r)
        # by-user records judged with what routing validated here (src/txnmon/core/handoff.py), or parsed again
        self.by_user_parses = Counter("txnmon_by_user_parses", "By-user records handed over from routing or "
                                      "parsed again", ["outcome"], registry=r)
        self.retries = Counter("txnmon_write_retries", "Batch writes retried after a failure", ["sink"], registry=r)
        self.batch_seconds = Histogram(
            "txnmon_batch_seconds", "Time from poll to commit of one batch", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.batch_size = Histogram("txnmon_batch_records", "Records per batch", registry=r,
                                    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000))
        self.lag = Gauge("txnmon_consumer_lag", "Messages behind the high-water mark (assigned partitions)",
                         registry=r)
        self.users_in_state = Gauge("txnmon_users_in_state", "Users whose history is held in memory", registry=r)
        self.rules = Info("txnmon_rules", "Rules version in use", registry=r)

    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        """Expose /metrics on `address` (loopback unless configured; port 0 disables).

        A port already taken (a second processor on this host) is a clear configuration error,
        not a traceback: give each processor its own METRICS_PORT, or 0.
        """
        serve(self.registry, port, address, "METRICS_PORT", "processor")


class EventsMetrics:
    """`txnmon events`: what it read, stored and rejected, its retries, the analyses' failures, how far
    event time is closed (EVENTS_METRICS_PORT)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.consumed = Counter("txnmon_events_consumed", "Messages read from the event topics", ["topic"],
                                registry=r)
        self.stored = Counter("txnmon_events_stored", "Events written to MongoDB (a redelivered one again)",
                              ["collection"], registry=r)
        self.dlq = Counter("txnmon_events_dlq", "Event messages rejected to the DLQ", ["reason"], registry=r)
        self.retries = Counter("txnmon_events_write_retries", "Batch writes retried after a failure", ["sink"],
                               registry=r)
        self.analysis_failures = Counter("txnmon_events_analysis_failures", "Analysis calls that raised",
                                         ["analysis"], registry=r)
        self.closed_until = Gauge("txnmon_events_closed_until_seconds",
                                  "Event time closed for the analyses (Unix seconds)", registry=r)
        self.batch_seconds = Histogram("txnmon_events_batch_seconds", "Time from poll to commit of one batch",
                                       registry=r, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.lag = Gauge("txnmon_events_consumer_lag", "Messages behind the high-water mark (assigned partitions)",
                         registry=r)

    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        serve(self.registry, port, address, "EVENTS_METRICS_PORT", "`txnmon events`")


def serve(registry: CollectorRegistry, port: int, address: str, variable: str, what: str) -> None:
    if not port:
        return
    try:
        start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot serve /metrics on {address}:{port} ({exc.strerror}); "
                          f"another {what} on this host? set {variable} to a free port, or 0") from None
