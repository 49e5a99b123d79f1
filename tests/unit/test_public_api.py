"""`import txnmon` gives the names a library user reaches for, lazily, and nothing by accident."""

from __future__ import annotations

import subprocess
import sys

import pytest

import txnmon


def test_every_exported_name_resolves_and_the_version_is_the_installed_one():
    from importlib import metadata

    for name in txnmon.__all__:
        assert getattr(txnmon, name) is not None, name
    assert txnmon.__version__ == metadata.version("txnmon")
    with pytest.raises(AttributeError, match="no attribute 'cli_main'"):
        txnmon.cli_main  # noqa: B018 - not exported


def test_the_top_level_names_parse_a_message_and_load_the_shipped_rules():
    import datetime as dt
    import json
    from zoneinfo import ZoneInfo

    from txnmon.settings import DEFAULT_RULES_FILE

    rules = txnmon.load_rules(DEFAULT_RULES_FILE)
    assert txnmon.Detector(rules).version == rules.version
    raw = json.dumps({"transaction_id": "T1", "user_id": "U1", "amount": "100", "payment_method": "UPI",
                      "location": "Mumbai", "timestamp": "2025-09-30T10:00:00Z"}).encode()
    tx = txnmon.parse_transaction(raw, zone=ZoneInfo("UTC"), now=dt.datetime(2025, 10, 1, tzinfo=dt.UTC),
                                  max_bytes=4096)
    assert isinstance(tx, dict) and tx["transaction_id"] == "T1"
    refused = txnmon.parse_transaction(b"{", zone=ZoneInfo("UTC"), now=dt.datetime(2025, 10, 1, tzinfo=dt.UTC),
                                       max_bytes=4096)
    assert not isinstance(refused, dict)


def test_importing_txnmon_loads_no_client_library_or_framework():
    code = ("import sys, txnmon; heavy = {'confluent_kafka', 'pymongo', 'airflow', 'streamlit', 'pandas'}; "
            "print(sorted(heavy & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
