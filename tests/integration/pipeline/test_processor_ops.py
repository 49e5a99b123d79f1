"""Operating the processor: metrics, rule hot reload, structured logs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import socket
import threading
import time
import urllib.request

import pytest

from tests.fixtures.pipeline import T0, produce, run_until_idle, stored_ids, tx_row, wait_for
from txnmon.adapters.mongo import MongoStore
from txnmon.logs import JsonFormatter
from txnmon.services.processor import Processor
from txnmon.settings import DEFAULT_RULES_FILE

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_endpoint_counts_what_happened(settings_factory):
    port = _free_port()
    s = settings_factory(metrics_port=port)
    produce(s, [tx_row("M1", "U1", T0, 60_000), tx_row("M2", "U2", T0), (b"U3", b"not json")])
    run_until_idle(s)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    metrics = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
               if line and not line.startswith("#")}
    assert metrics["txnmon_messages_consumed_total"] == 3
    assert metrics["txnmon_transactions_stored_total"] == 2
    assert metrics['txnmon_messages_dlq_total{reason="not_json"}'] == 1
    assert metrics['txnmon_alerts_total{rule="high_amount"}'] == 1
    assert metrics["txnmon_batch_seconds_count"] >= 1
    assert "txnmon_consumer_lag" in metrics and "txnmon_rules_info{version=" in text


def test_rules_change_applies_from_the_next_batch_and_a_broken_file_changes_nothing(settings_factory, tmp_path,
                                                                                 caplog):
    rules = tmp_path / "rules.yaml"
    shutil.copy(DEFAULT_RULES_FILE, rules)
    s = settings_factory(rules_file=str(rules))
    processor = Processor(s)
    thread = threading.Thread(target=processor.run, daemon=True)
    thread.start()
    try:
        produce(s, [tx_row("A1", "U1", T0, 30_000)])
        wait_for(lambda: "A1" in stored_ids(s, "transactions"), 60, "A1 stored")
        assert stored_ids(s, "alerts") == []
        first_version = processor.detector.version

        rules.write_text(rules.read_text().replace("threshold: 50000", "threshold: 20000"))
        wait_for(lambda: processor.detector.version != first_version, 30, "the new rules to load")
        produce(s, [tx_row("B1", "U2", T0 + dt.timedelta(hours=1), 30_000)])
        wait_for(lambda: "B1:high_amount" in stored_ids(s, "alerts"), 60, "B1's alert")
        alert = MongoStore(s).find_one("alerts", {"_id": "B1:high_amount"})
        assert alert["rules_version"] == processor.detector.version != first_version
        assert "20,000" in alert["reason"]

        good_version = processor.detector.version
        with caplog.at_level(logging.ERROR, logger="txnmon.stream"):
            rules.write_text("rules:\n  velocity: {window: whenever}\n")
            wait_for(lambda: "rules reload refused" in caplog.text, 30, "the refusal to be logged")
        assert "rules.velocity.window" in caplog.text
        produce(s, [tx_row("C1", "U3", T0 + dt.timedelta(hours=2), 30_000)])
        wait_for(lambda: "C1:high_amount" in stored_ids(s, "alerts"), 60, "C1's alert under the kept rules")
        assert processor.detector.version == good_version
    finally:
        processor.request_stop()
        thread.join(30)
    assert not thread.is_alive()
    assert stored_ids(s, "alerts") == ["B1:high_amount", "C1:high_amount"]


def test_sighup_style_request_reloads_without_waiting_for_the_timer(settings_factory, tmp_path):
    rules = tmp_path / "rules.yaml"
    shutil.copy(DEFAULT_RULES_FILE, rules)
    s = settings_factory(rules_file=str(rules))
    processor = Processor(s)
    old = processor.detector.version
    text = rules.read_text()
    assert 'version: "2"' in text  # the shipped file's label
    rules.write_text(text.replace('version: "2"', 'version: "reloaded"'))
    processor.request_rules_reload()
    processor.rules.maybe_reload()
    assert processor.detector.version.startswith("reloaded+") and processor.detector.version != old


def test_json_log_lines_carry_the_extra_fields():
    record = logging.LogRecord("txnmon.stream", logging.WARNING, __file__, 1, "mongodb unavailable (attempt %d)",
                               (3,), None)
    record.sink = "mongodb"
    doc = json.loads(JsonFormatter().format(record))
    assert doc["msg"] == "mongodb unavailable (attempt 3)" and doc["level"] == "warning"
    assert doc["sink"] == "mongodb" and doc["logger"] == "txnmon.stream"
    assert time.time() - dt.datetime.fromisoformat(doc["ts"]).timestamp() < 60
