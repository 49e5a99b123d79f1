"""docker-compose.yaml cannot run here (no Docker engine); check what can be checked."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml

from txnmon.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
APP_SERVICES = ["stream-processor", "notify", "dashboard", "txnmon-init", "api"]


def test_every_part_of_the_stack_is_a_service():
    assert {"kafka", "mongo", "stream-processor", "notify", "dashboard", "airflow-db", "airflow-apiserver",
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


# --- MongoDB logins: every connection in the compose file must match a user mongo-init.js creates ---

# Services that only read MongoDB (none yet: the dashboard writes triage dispositions); every other
# service with a MONGO_URI needs readWrite on its MONGO_DB.
READ_ONLY_SERVICES: frozenset[str] = frozenset()
# what each built-in role grants on the database it is given on; the *AnyDatabase roles and root count only on admin
_ROLE_GRANTS = {"read": {"read"}, "readWrite": {"read", "readWrite"}, "dbOwner": {"read", "readWrite"}}
_ANY_DB_ROLE_GRANTS = {"readAnyDatabase": {"read"}, "readWriteAnyDatabase": {"read", "readWrite"},
                       "root": {"read", "readWrite"}}
_COMPOSE_VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def _interpolate(value: object) -> str:
    """Compose's `${VAR:-default}` with defaults only; a variable without one stays `${VAR}` (set by .env)."""
    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.groups()
        return arg if op in (":-", "-") else "${" + name + "}"

    return _COMPOSE_VAR.sub(sub, str(value))


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: _interpolate(value) for key, value in env.items() if value is not None}


def _js_value(expr: str, env: dict[str, str], names: dict[str, str | None]) -> str | None:
    """A small JS expression: "literal", process.env.X, a name assigned earlier, joined by `||`."""
    for part in expr.split("||"):
        part = part.strip()
        if m := re.fullmatch(r"\"([^\"]*)\"|'([^']*)'", part):
            value = m.group(1) if m.group(1) is not None else m.group(2)
        elif m := re.fullmatch(r"process\.env\.(\w+)|process\.env\[[\"'](\w+)[\"']\]", part):
            value = env.get(m.group(1) or m.group(2))
        elif part in names:
            value = names[part]
        else:
            raise AssertionError(f"mongo-init.js: the test cannot evaluate {part!r}")
        if value:
            return value
    return None


def init_script_users(init_js: str, mongo_env: dict[str, str]) -> dict[tuple[str, str | None], dict]:
    """Users mongo-init.js creates, by (database, user name): {"pwd": ..., "roles": {(role, db), ...}}."""
    js = re.sub(r"/\*.*?\*/|//[^\n]*", "", init_js, flags=re.S)
    names: dict[str, str | None] = {}
    handles = {"db": mongo_env.get("MONGO_INITDB_DATABASE") or "test"}  # the entrypoint's `db`

    def database(handle: str) -> str:
        if m := re.fullmatch(r"\w+\.getSiblingDB\((.+)\)", handle.strip()):
            found = _js_value(m.group(1), mongo_env, names)
            assert found, f"mongo-init.js: getSiblingDB({m.group(1)}) names no database"
            return found
        assert handle.strip() in handles, f"mongo-init.js: unknown database handle {handle!r}"
        return handles[handle.strip()]

    users: dict[tuple[str, str | None], dict] = {}
    statement = re.compile(r"\b(?:const|let|var)\s+(\w+)\s*=\s*([^;]+);"
                           r"|(\w+(?:\.getSiblingDB\([^)]*\))?)\.createUser\(\s*\{(.*?)\}\s*\)", re.S)
    for m in statement.finditer(js):
        if m.group(1):
            if m.group(2).lstrip().startswith(("{", "[")):
                continue  # data (the roles table), not a name the createUser calls use
            if ".getSiblingDB(" in m.group(2):
                handles[m.group(1)] = database(m.group(2))
            else:
                names[m.group(1)] = _js_value(m.group(2), mongo_env, names)
            continue
        db_name, body = database(m.group(3)), m.group(4)
        field = {key: re.search(rf"[\"']?{key}[\"']?\s*:\s*([^,\n]+)", body) for key in ("user", "pwd")}
        assert field["user"], f"mongo-init.js: a createUser call in {db_name!r} has no user"
        pwd = field["pwd"] and field["pwd"].group(1).strip()
        roles_list = re.search(r"roles\s*:\s*\[(.*)\]", body, re.S)
        roles_text = roles_list.group(1) if roles_list else ""
        roles = set()
        for doc in re.findall(r"\{([^{}]*)\}", roles_text):
            role = re.search(r"[\"']?role[\"']?\s*:\s*([^,}]+)", doc)
            on = re.search(r"[\"']?db[\"']?\s*:\s*([^,}]+)", doc)
            roles.add((_js_value(role.group(1), mongo_env, names), _js_value(on.group(1), mongo_env, names)))
        for plain in re.findall(r"[\"'](\w+)[\"']", re.sub(r"\{[^{}]*\}", "", roles_text)):
            roles.add((plain, db_name))  # a bare role name is granted on the database the user is created in
        user = _js_value(field["user"].group(1), mongo_env, names)
        users[(db_name, user)] = {"pwd": pwd and _js_value(pwd, mongo_env, names), "roles": roles}
    return users


def _grants(roles: set[tuple[str | None, str | None]], db_name: str) -> set[str]:
    from tests.unit.test_mongo_roles import script_roles

    custom = {name: {"read"} | ({"readWrite"} if any(set(p["actions"]) & {"insert", "update"} for p in privileges)
                                else set()) for name, privileges in script_roles().items()}
    granted: set[str] = set()
    for role, on in roles:
        if on == db_name:
            granted |= _ROLE_GRANTS.get(role or "", set()) | custom.get(role or "", set())
        if on == "admin":
            granted |= _ANY_DB_ROLE_GRANTS.get(role or "", set())
    return granted


def mongo_login_problems(compose_text: str, init_js: str) -> list[str]:
    """Each compose service's MongoDB login checked against the users mongo-init.js creates.

    Like src/txnmon/adapters/mongo/client.py: the user is MONGO_USERNAME (else the URI's), the password
    MONGO_PASSWORD, and pymongo authenticates against the URI's authSource, else the URI's path
    database, else admin.
    """
    services = yaml.safe_load(compose_text)["services"]
    mongo_env = _environment(services["mongo"])
    users = init_script_users(init_js, mongo_env)
    problems, checked = [], 0
    for name, service in services.items():
        env = _environment(service)
        if "MONGO_URI" not in env:
            assert not {"MONGO_USERNAME", "MONGO_PASSWORD"} & set(env), f"{name}: MongoDB credentials without MONGO_URI"
            continue
        checked += 1
        uri = urlsplit(env["MONGO_URI"])
        options = {key.lower(): value for key, value in parse_qsl(uri.query)}
        path_db = unquote(uri.path.lstrip("/"))
        auth_db = options.get("authsource") or path_db or "admin"
        user = env.get("MONGO_USERNAME") or (uri.username and unquote(uri.username))
        app_db = env.get("MONGO_DB") or Settings.model_fields["mongo_db"].default
        need = "read" if name in READ_ONLY_SERVICES else "readWrite"
        if not user:
            problems.append(f"{name}: connects to MongoDB without a user, but the mongo service requires one")
            continue
        created = users.get((auth_db, user))
        if created is None:
            where = sorted(db for db, u in users if u == user)
            problems.append(f"{name}: logs in as {user!r} with authSource {auth_db!r}, but mongo-init.js creates "
                            + (f"{user!r} in {where}" if where else f"no user {user!r} (it creates {sorted(users)})"))
            continue
        if "MONGO_PASSWORD" in env and created["pwd"] != env["MONGO_PASSWORD"]:
            problems.append(f"{name}: MONGO_PASSWORD is {env['MONGO_PASSWORD']!r}, but mongo-init.js gives "
                            f"{user!r} the password {created['pwd']!r}")
        if need not in _grants(created["roles"], app_db):
            problems.append(f"{name}: needs {need} on {app_db!r}, but {user!r} has only {sorted(created['roles'])}")
    assert checked, "no service in the compose file has a MONGO_URI"
    return problems


def test_every_mongodb_login_matches_a_user_the_init_script_creates():
    problems = mongo_login_problems((ROOT / "docker-compose.yaml").read_text(),
                                    (ROOT / "docker" / "mongo-init.js").read_text())
    assert not problems, "\n".join(problems)


def test_bi_user_is_read_only_on_the_app_database():
    mongo_env = _environment(COMPOSE["services"]["mongo"])
    users = init_script_users((ROOT / "docker" / "mongo-init.js").read_text(), mongo_env)
    app_db, bi_user = mongo_env["MONGO_DB"], mongo_env["MONGO_BI_USERNAME"]
    assert (app_db, bi_user) in users, f"mongo-init.js creates no BI user {bi_user!r} in {app_db!r}: {sorted(users)}"
    roles = users[(app_db, bi_user)]["roles"]
    assert _grants(roles, app_db) == {"read"}, f"BI user {bi_user!r} must only read {app_db!r}: {sorted(roles)}"
    assert all(role == "read" for role, _ in roles), f"BI user {bi_user!r} has more than read: {sorted(roles)}"


def _interpolated(value: str) -> str:
    """What compose makes of ${VAR:-default} and ${VAR:?message} with the variables unset / set to 'x'."""
    return re.sub(r"\$\{[A-Z_]+:([-?])([^}]*)\}", lambda m: m.group(2) if m.group(1) == "-" else "x", value)


def test_airflow_services_define_the_connections_the_dag_tasks_read():
    import json

    from txnmon.airflow.connections import kafka_settings, mongo_settings

    for name in ("airflow-scheduler", "airflow-apiserver", "airflow-dag-processor", "airflow-triggerer"):
        env = COMPOSE["services"][name]["environment"]
        kafka_conn = json.loads(_interpolated(env["AIRFLOW_CONN_KAFKA_DEFAULT"]))
        mongo_conn = json.loads(_interpolated(env["AIRFLOW_CONN_MONGO_DEFAULT"]))
        assert kafka_conn["conn_type"] == "kafka" and mongo_conn["conn_type"] == "mongo", name
        assert kafka_settings(kafka_conn["extra"]) == {"kafka_bootstrap_servers": env["KAFKA_BOOTSTRAP_SERVERS"]}
        assert (mongo_conn["host"], mongo_conn["port"]) == ("mongo", 27017)
        assert mongo_conn["login"] == "txnmon_airflow" and mongo_conn["password"] == "x"  # from .env
        got = mongo_settings(f"mongodb://{mongo_conn['host']}:{mongo_conn['port']}/{mongo_conn['schema']}",
                             mongo_conn["schema"], mongo_conn["extra"])
        assert got["mongo_db"] == _interpolated(env["MONGO_DB"]) == "ecommerce_stream"
        assert got["mongo_uri"].endswith("?authSource=ecommerce_stream")


def test_the_notify_worker_runs_txnmon_notify_and_alone_gets_the_destinations_secrets():
    services = COMPOSE["services"]
    assert services["notify"]["command"] == ["txnmon", "notify"]
    secrets = {"TXNMON_NOTIFY_WEBHOOK_URL", "TXNMON_NOTIFY_WEBHOOK_SECRET", "TXNMON_NOTIFY_SLACK_WEBHOOK_URL",
               "TXNMON_NOTIFY_SMTP_PASSWORD"}
    assert secrets <= set(services["notify"]["environment"])
    for name, service in services.items():
        if name != "notify":
            assert not secrets & set(_environment(service)), name


def test_no_two_services_publish_the_same_host_port_whatever_the_profiles():
    """The scale profile's processors once published the notify worker's 127.0.0.1:9109: the documented
    three-processor setup could not start."""
    seen: dict[str, str] = {}
    clashes = []
    for name, service in COMPOSE["services"].items():
        for mapping in service.get("ports", []):
            host = str(mapping).rsplit(":", 1)[0]  # 127.0.0.1:9109 of 127.0.0.1:9109:9108
            if host in seen:
                clashes.append(f"{name} and {seen[host]} both publish {host}")
            seen[host] = name
    assert clashes == []
