"""DAG tasks take Kafka and MongoDB from the Airflow connections kafka_default and mongo_default when
they are defined (here as AIRFLOW_CONN_* variables, as docker-compose.yaml defines them), even
when the environment's KAFKA_BOOTSTRAP_SERVERS / MONGO_URI point nowhere."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from tests.fixtures.pipeline import run_until_idle
from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import KPI_RUNS
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NOWHERE = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "MONGO_URI": "mongodb://127.0.0.1:9"}


def connections(settings) -> dict[str, str]:
    mongo = urllib.parse.urlsplit(settings.mongo_uri.get_secret_value())
    return {
        "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps(
            {"conn_type": "kafka", "extra": {"bootstrap.servers": settings.kafka_bootstrap_servers}}),
        "AIRFLOW_CONN_MONGO_DEFAULT": json.dumps(
            {"conn_type": "mongo", "host": mongo.hostname, "port": mongo.port, "schema": settings.mongo_db}),
    }


def test_replay_dag_sends_through_the_kafka_connection(isolated_settings, run_dag, tmp_path):
    s = isolated_settings
    data = tmp_path / "day.csv"
    write_csv(generate(GeneratorSpec(rows=500, users=50, seed=8)), data)
    conf = json.dumps({"file": str(data), "speedup": 0})
    without = run_dag("replay_transactions", s, conf, **NOWHERE)
    assert without.returncode != 0  # the environment alone points nowhere: the test would notice
    result = run_dag("replay_transactions", s, conf, **NOWHERE, **connections(s))
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "kafka from Airflow connection kafka_default, mongodb from Airflow connection mongo_default" in log
    assert sum(kafka.end_offsets(s, s.topic_raw).values()) == 500


def test_rollups_dag_writes_to_the_database_of_the_mongo_connection(isolated_settings, run_dag, tmp_path):
    s = isolated_settings
    data = tmp_path / "day.csv"
    write_csv(generate(GeneratorSpec(rows=300, users=30, seed=9)), data)
    from txnmon.jobs.replay import replay_csv

    replay_csv(s, data)
    run_until_idle(s)
    result = run_dag("kpi_rollups", s, **{**NOWHERE, "MONGO_DB": "somewhere_else"}, **connections(s))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    [run] = MongoStore(s).find(KPI_RUNS)
    assert run["success"] and run["trigger"] == "airflow" and run["transactions_read"] == 300


def test_without_connections_the_environment_is_used(isolated_settings, run_dag, tmp_path):
    s = isolated_settings
    result = run_dag("kpi_rollups", s)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "kafka from environment, mongodb from environment" in log
    assert MongoStore(s).count(KPI_RUNS) == 1
