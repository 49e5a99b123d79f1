"""The Grafana dashboard in docker/grafana queries only metrics the processor exports, and Prometheus
scrapes the processor where the compose file serves it (no Docker here: checked as files)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import generate_latest

from txnmon.services.metrics import ProcessorMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "docker" / "grafana" / "dashboards" / "txnmon-processor.json").read_text())
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def exported_series() -> set[str]:
    metrics = ProcessorMetrics()
    metrics.dlq.labels(reason="not_json").inc()  # labelled metrics show samples only once used
    metrics.alerts.labels(rule="velocity").inc()
    metrics.suppressed.labels(rule="velocity").inc()
    metrics.shadow.labels(rule="velocity").inc()
    metrics.retries.labels(sink="transactions").inc()
    metrics.rules.info({"version": "1+abc"})
    text = generate_latest(metrics.registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def queried_series() -> set[str]:
    exprs = [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]
    return {name for e in exprs for name in re.findall(r"\btxnmon_[a-z_]+\b", e)}


def test_every_metric_the_dashboard_queries_is_exported_by_the_processor():
    queried, exported = queried_series(), exported_series()
    assert len(queried) >= 10
    assert queried <= exported, sorted(queried - exported)


def test_the_dashboard_covers_what_operators_watch():
    titles = " ".join(p["title"] for p in DASHBOARD["panels"]).lower()
    for topic in ("throughput", "lag", "batch time", "dlq by reason", "alerts by rule", "retries"):
        assert topic in titles, topic
    assert {t["datasource"]["uid"] for p in DASHBOARD["panels"] for t in p["targets"]} == {"txnmon-prometheus"}


def test_prometheus_scrapes_the_processor_and_grafana_is_provisioned():
    config = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert {t.split(":")[0] for t in targets} == {"stream-processor", "api"}  # the processor, and txnmon serve
    for target in targets:
        service, port = target.split(":")
        assert service in COMPOSE["services"] and f"127.0.0.1:{port}:{port}" in COMPOSE["services"][service]["ports"]
    datasource = yaml.safe_load((ROOT / "docker/grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert datasource["datasources"][0]["uid"] == "txnmon-prometheus"
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090" and "prometheus" in COMPOSE["services"]
    grafana = COMPOSE["services"]["grafana"]
    assert "./docker/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${")
