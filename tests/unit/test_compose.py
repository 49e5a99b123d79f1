"""docker-compose.yaml cannot run here (no Docker engine); check what can be checked."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from include.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
APP_SERVICES = ["stream-processor", "dashboard", "txnmon-init"]


def test_every_part_of_the_stack_is_a_service():
    assert {"kafka", "mongo", "stream-processor", "dashboard", "airflow-db", "airflow-apiserver",
            "airflow-scheduler", "airflow-dag-processor"} <= set(COMPOSE["services"])
    assert COMPOSE["services"]["mongo"]["image"].startswith("mongo:")
    assert COMPOSE["services"]["kafka"]["image"].startswith("apache/kafka:")


def test_app_services_get_every_variable_the_code_reads():
    required = {"KAFKA_BOOTSTRAP_SERVERS", "MONGO_URI", "MONGO_DB", "TOPIC_RAW", "TOPIC_ENRICHED",
                "TOPIC_DLQ", "CONSUMER_GROUP"}
    assert required <= {name.upper() for name in Settings.model_fields}
    for name in [*APP_SERVICES, "airflow-scheduler"]:
        env = COMPOSE["services"][name]["environment"]
        assert required <= set(env), name
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["MONGO_URI"].startswith("mongodb://mongo:27017")


def test_no_secret_is_written_in_the_file():
    text = (ROOT / "docker-compose.yaml").read_text()
    for match in re.finditer(r"^\s*[A-Z_]*(PASSWORD|SECRET)[A-Z_]*:\s*(\S+)", text, re.M):
        assert match.group(2).startswith("${"), match.group(0)
    assert not re.search(r"mongodb://[^/\s]+:[^@\s]+@", text)


def test_env_example_documents_every_setting():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert {name.upper() for name in Settings.model_fields} <= documented
