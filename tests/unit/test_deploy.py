"""The deployments that cannot run here (Kubernetes, Helm, the compose scale profile), checked
for what can be checked: they parse, set only settings txnmon knows (valid ones), run commands
the CLI has, name images built here or pinned, and never scale past the partitions."""

from __future__ import annotations

import copy
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from txnmon.airflow.connections import KAFKA_CONN_ID, MONGO_CONN_ID
from txnmon.cli import build_parser
from txnmon.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
SETTINGS = {name.upper() for name in Settings.model_fields}
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
VALUES = yaml.safe_load((DEPLOY / "airflow" / "values.yaml").read_text())
# variables of the image and of Airflow itself, not txnmon settings
# the variables the shipped routes file names for the notification worker's secrets (url_env, ...)
ROUTE_SECRETS = {value for dest in yaml.safe_load((ROOT / "src/txnmon/data/notify/routes.yaml").read_text())
                 ["destinations"].values() for key, value in dest.items() if key.endswith("_env")}
AIRFLOW_OWN = re.compile(r"AIRFLOW__[A-Z0-9_]+__[A-Z0-9_]+|AIRFLOW_CONN_[A-Z0-9_]+|AIRFLOW_HOME")


# --- a small kustomize: just what deploy/k8s uses, and a failure for anything else --------------

KUSTOMIZATION_KEYS = {"apiVersion", "kind", "namespace", "labels", "resources", "configMapGenerator", "patches",
                      "images"}


def _env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as kustomize does it for the fields used here: maps merge, lists of named
    items (containers, ports, volumes) merge by name, other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and patch
            and all(isinstance(i, dict) and "name" in i for i in base + patch)):
        out = [copy.deepcopy(i) for i in base]
        for item in patch:
            match = next((n for n, b in enumerate(out) if b["name"] == item["name"]), None)
            if match is None:
                out.append(copy.deepcopy(item))
            else:
                out[match] = _merge(out[match], item)
        return out
    return copy.deepcopy(patch)


def _containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def render(directory: Path) -> list[dict]:
    """The documents `kustomize build directory` gives (names without the generators' hash)."""
    kust = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kust) - KUSTOMIZATION_KEYS
    assert not unknown, f"{directory}: the test's renderer does not know {sorted(unknown)}; teach it"
    docs: list[dict] = []
    for entry in kust.get("resources", []):
        path = directory / entry
        docs += render(path) if path.is_dir() else [d for d in yaml.safe_load_all(path.read_text()) if d]
    for gen in kust.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for env in gen.get("envs", []):
            data.update(_env_file(directory / env))
        data.update(dict(item.split("=", 1) for item in gen.get("literals", [])))
        behavior = gen.get("behavior", "create")
        existing = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == gen["name"]]
        if behavior == "create":
            assert not existing, f"{directory}: ConfigMap {gen['name']} generated twice"
            docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
        else:
            assert existing, f"{directory}: behavior {behavior} but no ConfigMap {gen['name']} in the bases"
            existing[0]["data"] = {**existing[0]["data"], **data} if behavior == "merge" else data
    for patch in kust.get("patches", []):
        assert set(patch) == {"path"}, f"{directory}: only file patches are supported here"
        for part in yaml.safe_load_all((directory / patch["path"]).read_text()):
            key = (part["kind"], part["metadata"]["name"])
            targets = [n for n, d in enumerate(docs) if (d["kind"], d["metadata"]["name"]) == key]
            assert targets, f"{directory}/{patch['path']}: patches {key}, which is not in the resources"
            docs[targets[0]] = _merge(docs[targets[0]], part)
    for image in kust.get("images", []):
        for doc in docs:
            for container in _containers(doc):
                if container["image"] == image["name"]:
                    container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    for doc in docs:
        if "namespace" in kust:
            doc["metadata"]["namespace"] = kust["namespace"]
        for labels in kust.get("labels", []):
            doc["metadata"].setdefault("labels", {}).update(labels["pairs"])
    return docs


def rendered(overlay: str) -> list[dict]:
    return render(K8S / "overlays" / overlay)


def config_of(docs: list[dict]) -> dict[str, str]:
    [config] = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "txnmon-config"]
    return config["data"]


def workload(docs: list[dict], name: str) -> dict:
    [doc] = [d for d in docs if d["kind"] in ("Deployment", "Job") and d["metadata"]["name"] == name]
    return doc


# --- the checks ----------------------------------------------------------------------------------


def test_every_deploy_file_parses():
    files = [*DEPLOY.rglob("*.yaml")]
    assert len(files) >= 10
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, path
        if path.name not in ("kustomization.yaml", "values.yaml"):
            assert all({"apiVersion", "kind", "metadata"} <= set(d) for d in docs), path


def test_there_are_a_local_and_a_production_overlay_and_each_renders_the_whole_app():
    assert {"local", "production"} <= set(OVERLAYS)
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        for name in ("txnmon-processor", "txnmon-notify", "txnmon-dashboard", "txnmon-init", "txnmon-api"):
            assert workload(docs, name)["metadata"]["namespace"], (overlay, name)
        assert config_of(docs)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_a_manifest_sets_is_a_valid_txnmon_setting(overlay):
    docs = rendered(overlay)
    config = config_of(docs)
    assert set(config) <= SETTINGS, sorted(set(config) - SETTINGS)
    secrets = _env_file(K8S / "base" / "secrets.example.env")
    assert set(secrets) <= SETTINGS, sorted(set(secrets) - SETTINGS)
    # the values themselves pass the settings' checks (a bad one would stop every pod at start)
    values = {**config, **{k: v for k, v in secrets.items() if v}}
    values.pop("MONGO_USERNAME", None)  # set together with the password, which the example leaves empty
    settings = load_settings(**{k.lower(): v for k, v in values.items()})
    assert settings.metrics_address == "0.0.0.0"  # the probes and Prometheus reach /metrics from outside the pod
    for doc in docs:
        for container in _containers(doc):
            names = {e["name"] for e in container.get("env", [])}
            assert names <= SETTINGS, (doc["metadata"]["name"], sorted(names - SETTINGS))
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] == "txnmon-config"
                else:  # txnmon-secrets (secrets.example.env) or the notify worker's own, optional
                    ref = source["secretRef"]
                    assert ref["name"] == "txnmon-secrets" or ref.get("optional") is True, ref


def test_no_secret_is_written_in_the_deploy_files():
    for path in DEPLOY.rglob("*"):
        if not path.is_file():
            continue
        text = path.read_text()
        assert not re.search(r"mongodb(\+srv)?://[^/\s@]+:[^@\s]+@", text), path
        for doc in (yaml.safe_load_all(text) if path.suffix == ".yaml" else []):
            assert not (doc and doc.get("kind") == "Secret"), f"{path}: Secrets are created outside the repository"
    secrets = _env_file(K8S / "base" / "secrets.example.env")
    assert all(not v for k, v in secrets.items() if "PASSWORD" in k)


def _txnmon_commands() -> list[tuple[str, list[str]]]:
    found = []
    for overlay in OVERLAYS:
        for doc in rendered(overlay):
            for container in _containers(doc):
                found.append((f"{overlay}/{doc['metadata']['name']}", container.get("command", [])))
                probe = container.get("readinessProbe", {}).get("exec", {}).get("command")
                if probe:
                    found.append((f"{overlay}/{doc['metadata']['name']} readiness", probe))
    for name, service in COMPOSE["services"].items():
        command = service.get("command") or []
        found.append((f"compose/{name}", shlex.split(command) if isinstance(command, str) else command))
    return [(where, cmd) for where, cmd in found if cmd and cmd[0] == "txnmon"]


TXNMON_COMMANDS = _txnmon_commands()


@pytest.mark.parametrize(("where", "command"), TXNMON_COMMANDS, ids=[w for w, _ in TXNMON_COMMANDS])
def test_every_txnmon_command_a_deployment_runs_exists(where, command):
    build_parser().parse_args(command[1:])  # exits (fails the test) on an unknown command or argument


def test_the_deployments_run_every_long_lived_command():
    commands = {tuple(c[:2]) for _, c in TXNMON_COMMANDS}
    assert {("txnmon", "stream"), ("txnmon", "init"), ("txnmon", "notify"), ("txnmon", "serve"),
            ("txnmon", "events")} <= commands


def test_the_dashboard_command_runs_the_app_in_this_repository():
    for overlay in OVERLAYS:
        command = _containers(workload(rendered(overlay), "txnmon-dashboard"))[0]["command"]
        assert command[:2] == ["streamlit", "run"] and (ROOT / command[2]).is_file()
        assert COMPOSE["services"]["dashboard"]["command"][:3] == command[:3]


def _pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def test_every_image_is_built_here_or_pinned():
    for overlay in OVERLAYS:
        kust = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
        [ours] = [i for i in kust["images"] if i["name"] == "txnmon"]  # the Dockerfile's image
        built = f"{ours.get('newName', 'txnmon')}:{ours['newTag']}"
        assert _pinned(built), (overlay, built)
        for doc in rendered(overlay):
            for container in _containers(doc):
                assert container["image"] == built or _pinned(container["image"]), (overlay, container["image"])
    for name, service in COMPOSE["services"].items():
        assert service.get("build") == "." or _pinned(service["image"]), (name, service.get("image"))
    airflow = VALUES["images"]["airflow"]
    assert _pinned(f"{airflow['repository']}:{airflow['tag']}")
    assert (VALUES["defaultAirflowRepository"], VALUES["defaultAirflowTag"]) == (airflow["repository"], airflow["tag"])


def test_keda_never_scales_the_processor_past_the_partition_count():
    scaled = 0
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        config = config_of(docs)
        for obj in (d for d in docs if d["kind"] == "ScaledObject"):
            scaled += 1
            spec = obj["spec"]
            target = workload(docs, spec["scaleTargetRef"]["name"])
            assert _containers(target)[0]["command"] == ["txnmon", "stream"]
            assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= int(config["TOPIC_PARTITIONS"]), overlay
            topics = set()
            for trigger in spec["triggers"]:
                meta = trigger["metadata"]
                assert trigger["type"] == "kafka"
                assert meta["consumerGroup"] == config["CONSUMER_GROUP"], overlay
                assert meta["bootstrapServers"] == config["KAFKA_BOOTSTRAP_SERVERS"], overlay
                assert meta.get("allowIdleConsumers", "false") == "false"
                assert int(meta["lagThreshold"]) > 0
                topics.add(meta["topic"])
            # the processor is a member on both input topics: lag on either is work waiting
            assert topics == {config["TOPIC_RAW"], config["TOPIC_BY_USER"]}, overlay
    assert scaled, "no overlay autoscales the processor"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_processor_probes_reach_its_metrics_endpoint_and_status(overlay):
    docs = rendered(overlay)
    config = config_of(docs)
    deployment = workload(docs, "txnmon-processor")
    [container] = _containers(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(config["METRICS_PORT"]) > 0
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}, probe
    assert container["readinessProbe"]["exec"]["command"][:2] == ["txnmon", "status"]
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]
    # SIGTERM finishes the batch and commits: the pod gets time for it
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_api_runs_two_replicas_behind_a_service_with_http_probes(overlay):
    docs = rendered(overlay)
    config = config_of(docs)
    deployment = workload(docs, "txnmon-api")
    [container] = _containers(deployment)
    assert container["command"] == ["txnmon", "serve"]
    assert deployment["spec"]["replicas"] >= 2
    env = {e["name"]: e["value"] for e in container["env"]}
    # 0.0.0.0 only here, in the pod: the ConfigMap (read by every workload) leaves txnmon's default
    assert env["API_HOST"] == "0.0.0.0" and "API_HOST" not in config
    settings = load_settings(api_host=env["API_HOST"], api_port=env["API_PORT"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["http"] == settings.api_port > 0
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # readiness probes take up to 5 s (src/txnmon/api/app.py READY_TIMEOUT_S): the kubelet waits longer
    assert container["readinessProbe"]["timeoutSeconds"] > 5
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert (annotations["prometheus.io/path"], int(annotations["prometheus.io/port"])) == ("/metrics", ports["http"])
    [service] = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "txnmon-api"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def test_compose_runs_the_api_on_loopback_with_its_readiness_as_health():
    api = COMPOSE["services"]["api"]
    assert api["command"] == ["txnmon", "serve"] and api["environment"]["API_HOST"] == "0.0.0.0"
    assert api["ports"] == [f"127.0.0.1:{api['environment']['API_PORT']}:{api['environment']['API_PORT']}"]
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    scrape = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    [job] = [j for j in scrape if j["job_name"] == "txnmon-api"]
    assert job["static_configs"][0]["targets"] == [f"api:{api['environment']['API_PORT']}"]


def test_compose_scale_profile_runs_three_processors_on_six_partitions():
    services = COMPOSE["services"]
    processors = {n: s for n, s in services.items() if s.get("command") == ["txnmon", "stream"]}
    assert len(processors) == 3
    assert [n for n, s in processors.items() if "scale" in s.get("profiles", [])] == ["stream-processor-2",
                                                                                     "stream-processor-3"]
    partitions = {re.sub(r"\$\{\w+:-(\d+)\}", r"\1", str(s["environment"]["TOPIC_PARTITIONS"]))
                  for s in processors.values()}
    assert partitions == {"6"}
    groups = {s["environment"]["CONSUMER_GROUP"] for s in processors.values()}
    assert len(groups) == 1  # one consumer group: the members share the partitions
    host_ports = [p.split(":")[1] for s in processors.values() for p in s["ports"]]
    assert len(set(host_ports)) == 3 and all(p.startswith("127.0.0.1:") for s in processors.values()
                                             for p in s["ports"])
    scrape = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    [job] = [j for j in scrape if j["job_name"] == "txnmon-processor"]
    scraped = {t.split(":")[0] for sc in job.get("static_configs", []) for t in sc["targets"]}
    scraped |= {n for sd in job.get("dns_sd_configs", []) for n in sd["names"]}
    assert scraped == set(processors)


def test_compose_scale_profile_runs_airflow_on_celery():
    services = COMPOSE["services"]
    worker, redis = services["airflow-worker"], services["redis"]
    assert worker["command"] == ["airflow", "celery", "worker"] and "scale" in worker["profiles"]
    assert "scale" in redis["profiles"] and "ports" not in redis  # Celery's broker stays on the compose network
    env = worker["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://airflow:${AIRFLOW_DB_PASSWORD")
    # reports written by the task's container are served by the API server's: one shared volume
    for name in ("airflow-worker", "airflow-scheduler", "airflow-apiserver"):
        assert f"reports:{env['REPORTS_DIR']}" in services[name]["volumes"], name
    example = (ROOT / ".env.example").read_text()
    assert "# COMPOSE_PROFILES=scale" in example and "# AIRFLOW_EXECUTOR=CeleryExecutor" in example


def test_compose_app_services_set_only_settings_and_airflow_variables():
    for name, service in COMPOSE["services"].items():
        if service.get("build") != ".":
            continue  # Kafka, MongoDB, PostgreSQL, Redis, Prometheus, Grafana: their own images' variables
        names = set(service.get("environment") or {})
        unknown = {n for n in names - SETTINGS - ROUTE_SECRETS if not AIRFLOW_OWN.fullmatch(n)}
        assert not unknown, (name, sorted(unknown))
    assert set(COMPOSE["services"]["notify"]["environment"]) >= ROUTE_SECRETS


def test_the_image_has_what_celery_and_the_metadata_database_need():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deploy = " ".join(project["optional-dependencies"]["deploy"])
    assert "apache-airflow-providers-celery" in deploy and "psycopg2" in deploy
    lock = (ROOT / "uv.lock").read_text()
    assert 'name = "apache-airflow-providers-celery"' in lock and 'name = "redis"' in lock
    dockerfile = (ROOT / "Dockerfile").read_text()
    syncs = re.findall(r"^RUN uv sync .*$", dockerfile, re.M)
    assert syncs and all("--extra deploy" in line for line in syncs)


def test_the_image_gives_the_chart_s_airflow_user_a_writable_home():
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid, home = VALUES.get("uid", 50000), VALUES.get("airflowHome", "/opt/airflow")  # the chart's defaults
    assert f"chown {uid}:0 {home}" in dockerfile and f"chmod 775 {home}" in dockerfile


def test_airflow_values_run_the_dags_of_this_repository_with_its_connections():
    assert VALUES["executor"] in ("CeleryExecutor", "KubernetesExecutor")
    git = VALUES["dags"]["gitSync"]
    assert git["enabled"] is True and git["subPath"] == "dags"
    assert sorted((ROOT / git["subPath"]).glob("*.py")), "git-sync's subPath holds no DAG files"
    env = {e["name"]: e["value"] for e in VALUES["env"]}
    assert set(env) <= SETTINGS, sorted(set(env) - SETTINGS)
    load_settings(**{k.lower(): v for k, v in env.items()})  # valid values
    secrets = {s["envName"]: s for s in VALUES["secret"]}
    assert set(secrets) == {f"AIRFLOW_CONN_{KAFKA_CONN_ID.upper()}", f"AIRFLOW_CONN_{MONGO_CONN_ID.upper()}"}
    assert all(s["secretKey"] == name for name, s in secrets.items())
    # plugins/ and src/txnmon/ come from the image: the plugins folder is where the Dockerfile puts them
    workdir = re.search(r"^WORKDIR (\S+)", (ROOT / "Dockerfile").read_text(), re.M).group(1)
    plugins = VALUES["config"]["core"]["plugins_folder"]
    assert plugins == f"{workdir}/plugins" and (ROOT / "plugins").is_dir()
    # the reports the workers write are on a volume the API server mounts too
    [mount] = [m for m in VALUES["volumeMounts"] if m["mountPath"] == env["REPORTS_DIR"]]
    [volume] = [v for v in VALUES["volumes"] if v["name"] == mount["name"]]
    pvc = yaml.safe_load((DEPLOY / "airflow" / "reports-pvc.yaml").read_text())
    assert volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_the_image_has_the_openmp_runtime_lightgbm_links():
    # the lightgbm wheel links the system's libgomp.so.1; python:3.11-slim has none, so the risk
    # model's training (docs/model.md) would fail to import in the image without it
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert any(d.startswith("lightgbm") for d in project["project"]["dependencies"])
    assert re.search(r"^RUN apt-get .*install .*libgomp1", (ROOT / "Dockerfile").read_text(), re.M)
