"""Kafka and MongoDB for DAG tasks from the Airflow connections `kafka_default` and `mongo_default`.

Read through the official providers' hooks (apache-airflow-providers-apache-kafka: `KafkaBaseHook`,
its connection's extra is the client config; apache-airflow-providers-mongo: `MongoHook`, which
builds the URI from host, port, login, password and schema). A connection that is not defined
leaves the environment's settings (KAFKA_BOOTSTRAP_SERVERS, MONGO_URI, ...) in force. Hooks are
built when a task runs, never when a DAG file is parsed.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Mapping
from typing import Any

from txnmon.settings import Settings, load_settings

KAFKA_CONN_ID = "kafka_default"
MONGO_CONN_ID = "mongo_default"
log = logging.getLogger("txnmon.connections")

# librdkafka keys of a Kafka connection's extra -> txnmon settings
KAFKA_KEYS = {
    "bootstrap.servers": "kafka_bootstrap_servers",
    "security.protocol": "kafka_security_protocol",
    "sasl.mechanism": "kafka_sasl_mechanism",
    "sasl.mechanisms": "kafka_sasl_mechanism",
    "sasl.username": "kafka_sasl_username",
    "sasl.password": "kafka_sasl_password",
    "ssl.ca.location": "kafka_ssl_cafile",
    "ssl.certificate.location": "kafka_ssl_certfile",
    "ssl.key.location": "kafka_ssl_keyfile",
}
MONGO_HOOK_ONLY_EXTRAS = {"srv", "allow_insecure"}  # the hook's own switches, not URI options


def kafka_settings(extra: Mapping[str, Any]) -> dict[str, Any]:
    """Settings from a Kafka connection's config dict (keys txnmon does not use are ignored)."""
    return {KAFKA_KEYS[k]: (v.upper() if k == "security.protocol" else v) for k, v in extra.items()
            if k in KAFKA_KEYS and v not in (None, "")}


def mongo_settings(uri: str, database: str | None, extras: Mapping[str, Any]) -> dict[str, Any]:
    """Settings from a MongoDB connection: its URI with the extras as URI options, and its schema as the database."""
    options = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in extras.items()
               if k not in MONGO_HOOK_ONLY_EXTRAS}
    if options:
        uri += ("&" if "?" in uri else "?") + urllib.parse.urlencode(options)
    return {"mongo_uri": uri, **({"mongo_db": database} if database else {})}


def settings_from_connections(kafka_conn_id: str = KAFKA_CONN_ID,
                              mongo_conn_id: str = MONGO_CONN_ID) -> tuple[dict[str, Any], dict[str, str]]:
    """The settings the defined connections give, and where Kafka and MongoDB come from."""
    from airflow.providers.apache.kafka.hooks.base import KafkaBaseHook
    from airflow.providers.mongo.hooks.mongo import MongoHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    values: dict[str, Any] = {}
    sources = {"kafka": "environment", "mongodb": "environment"}
    try:
        conn = KafkaBaseHook(kafka_config_id=kafka_conn_id).get_connection(kafka_conn_id)
        values.update(kafka_settings(conn.extra_dejson))
        sources["kafka"] = f"Airflow connection {kafka_conn_id}"
    except AirflowNotFoundException:
        pass
    try:
        hook = MongoHook(mongo_conn_id=mongo_conn_id)
        values.update(mongo_settings(hook.uri, hook.connection.schema, hook.extras))
        sources["mongodb"] = f"Airflow connection {mongo_conn_id}"
    except AirflowNotFoundException:
        pass
    return values, sources


def task_settings() -> Settings:
    """A DAG task's settings: the environment's, with Kafka and MongoDB from the connections when they
    are defined. Built per task and passed on; nothing global changes."""
    values, sources = settings_from_connections()
    log.info("kafka from %s, mongodb from %s", sources["kafka"], sources["mongodb"])
    return load_settings(**values)
