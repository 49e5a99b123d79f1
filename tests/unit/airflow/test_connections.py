"""Airflow connections to txnmon settings: the mapping, the precedence, and the providers' hooks
reading AIRFLOW_CONN_* variables (no server)."""

from __future__ import annotations

import json
import secrets
from urllib.parse import quote

from txnmon import settings as config
from txnmon.airflow.connections import kafka_settings, mongo_settings, settings_from_connections, task_settings

# made up per run, never a credential in the repository; the "@" must come out percent-encoded
PASSWORD = "p@" + secrets.token_hex(4)
SASL_PASSWORD = secrets.token_hex(4)


def test_kafka_connection_extra_maps_to_settings():
    extra = {"bootstrap.servers": "kafka:29092", "security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512",
             "sasl.username": "app", "sasl.password": SASL_PASSWORD, "ssl.ca.location": "/ca.pem",
             "group.id": "ignored"}
    assert kafka_settings(extra) == {
        "kafka_bootstrap_servers": "kafka:29092", "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512", "kafka_sasl_username": "app", "kafka_sasl_password": SASL_PASSWORD,
        "kafka_ssl_cafile": "/ca.pem"}
    settings = config.load_settings(**kafka_settings(extra))
    assert settings.kafka_sasl_password.get_secret_value() == SASL_PASSWORD


def test_mongo_connection_gives_uri_with_options_and_database():
    uri = "mongodb://app:" + quote(PASSWORD, safe="") + "@mongo:27017/shop"
    got = mongo_settings(uri, "shop", {"authSource": "admin", "tls": True,
                                                                          "srv": False, "allow_insecure": "false"})
    assert got == {"mongo_uri": uri + "?authSource=admin&tls=true", "mongo_db": "shop"}
    assert mongo_settings("mongodb://mongo:27017", None, {}) == {"mongo_uri": "mongodb://mongo:27017"}


def test_a_tasks_connections_win_over_the_environment_and_change_nothing_global(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "envhost:9092")
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps(
        {"conn_type": "kafka", "extra": {"bootstrap.servers": "connhost:9092"}}))
    config.get_settings.cache_clear()
    try:
        assert task_settings().kafka_bootstrap_servers == "connhost:9092"
        # the process's own settings (the CLI's, the dashboard's) are still the environment's
        assert config.get_settings().kafka_bootstrap_servers == "envhost:9092"
    finally:
        config.get_settings.cache_clear()


def test_hooks_read_connections_from_airflow_conn_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps(
        {"conn_type": "kafka", "extra": {"bootstrap.servers": "kafka:29092"}}))
    monkeypatch.setenv("AIRFLOW_CONN_MONGO_DEFAULT", json.dumps(
        {"conn_type": "mongo", "host": "mongo", "port": 27017, "login": "app", "password": PASSWORD, "schema": "shop"}))
    values, sources = settings_from_connections()
    assert values == {"kafka_bootstrap_servers": "kafka:29092",
                      "mongo_uri": "mongodb://app:" + quote(PASSWORD, safe="") + "@mongo:27017/shop",
                      "mongo_db": "shop"}
    assert sources == {"kafka": "Airflow connection kafka_default", "mongodb": "Airflow connection mongo_default"}
    monkeypatch.delenv("AIRFLOW_CONN_MONGO_DEFAULT")
    values, sources = settings_from_connections()
    assert "mongo_uri" not in values and sources["mongodb"] == "environment"
