"""The MongoDB roles docker/mongo-init.js creates: one per component, each writing only its own
collections, and none able to change or delete an audit entry (issue 27, item 14).

The roles are data in mongo-init.js (`const ROLES = {...}`, JSON between two marker lines). This
module holds the table they come from (`WRITES`): `expected_roles()` derives them, and on a change
`python -m tests.unit.test_mongo_roles` prints the JSON to paste. The tests check the JSON in the
script, not the table, for the audit property, and tie each component's collections to the modules
that component runs.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import yaml

from txnmon.core import collection_names as names
from txnmon.core.rollups import ROLLUP_NAMES
from txnmon.pipeline.orders import LIVE, NOTIFYING, REPLAY

ROOT = Path(__file__).resolve().parents[2]
INIT_JS = ROOT / "docker" / "mongo-init.js"
AUDIT = names.AUDIT_LOG

# every role reads the whole database (the dashboard and the jobs read across collections)
READ = ["collStats", "dbStats", "find", "listCollections", "listIndexes"]
WRITE = ["insert", "remove", "update"]  # update and insert for upserts and $merge, remove for rollup rewrites
APPEND = ["insert"]  # the audit trail: appended to, never changed
# (role, collection) a role may only insert into: the DAG registers risk models, it never changes or
# removes one (promoting is the operator's, audited: `txnmon models promote`, issue 32)
INSERT_ONLY = {("txnmon_airflow", names.MODEL_VERSIONS)}
# collections only the admin role writes: which risk model is promoted
ADMIN_ONLY = (names.MODEL_PROMOTION,)
SCHEMA = ["createCollection", "createIndex"]  # `txnmon init` only

# the collections each component writes (all but the audit trail with WRITE)
WRITES: dict[str, tuple[str, ...]] = {
    # `txnmon stream`: the sinks (pipeline.orders LIVE), the alerts' side collections, the rules versions
    # it records (jobs.lists.ListsFeed) and their audit entries
    "txnmon_processor": (names.TRANSACTIONS, names.REJECTED, names.ALERTS, names.SUPPRESSED_ALERTS,
                         names.SHADOW_ALERTS, names.NOTIFICATIONS, names.CASES, names.TOUCHED_HOURS,
                         names.WATERMARKS, names.RULE_VERSIONS, AUDIT),
    # `txnmon events`: the cart, stock and review events, their rejects, the event topics' watermarks, and
    # what its analyses (services.events.ANALYSES) write: their outputs, ops alerts, walk states and leases
    "txnmon_events": (names.CART_EVENTS, names.STOCK_EVENTS, names.REVIEWS, names.REJECTED, names.WATERMARKS,
                      names.STOCK_LEVELS, names.KPI_STOCK_HOUR, names.STOCK_STATE, names.REVIEW_SCORES,
                      names.SENTIMENT_HOUR, names.SENTIMENT_STATE, names.OPS_ALERTS, names.LEASES,
                      names.ABANDONED_CARTS, names.CART_OUTCOMES, names.INTERVENTIONS, names.ABANDONMENT_HOUR,
                      names.ABANDONMENT_STATE, names.NOTIFICATIONS),
    # `txnmon notify`: the outbox's leases and outcomes, the shared rate limits
    "txnmon_notify": (names.NOTIFICATIONS, names.NOTIFY_RATES),
    # the dashboard and the analyst's commands: cases, triage, lists, the audit of each action
    "txnmon_desk": (names.CASES, names.ALERT_DISPOSITIONS, names.RULE_QUALITY, names.LIST_ENTRIES, names.LIST_CHANGES,
                    AUDIT),
    # the DAGs: rollups (kpi_*, their runs, the lease), signals, quality, the failure notifier's outbox,
    # the risk models train_risk_model registers (insert only: INSERT_ONLY)
    "txnmon_airflow": (*ROLLUP_NAMES, names.RULE_QUALITY, names.KPI_RUNS, names.CUSTOMERS_HOUR,
                       names.CUSTOMER_FIRSTS, names.TOUCHED_HOURS, names.LEASES, names.QUALITY_REPORTS,
                       names.OPS_ALERTS, names.TRENDS, names.SIGNAL_STATE, names.NOTIFICATIONS,
                       names.MODEL_VERSIONS),
}
# `txnmon init` and the operator's commands (window replay, dlq redrive, notify resend, rollups by
# hand): everything the others write, and the schema
ALL = tuple(sorted({c for cs in WRITES.values() for c in cs} | set(ADMIN_ONLY)))
WRITES["txnmon_admin"] = ALL


def expected_roles() -> dict[str, list[dict]]:
    """Role name -> privileges (resource collection "" is the whole database; the db is filled in by
    the script, which knows MONGO_DB)."""
    roles = {}
    for role, collections in WRITES.items():
        privileges = [{"collection": "", "actions": READ}]
        for c in sorted(set(collections)):
            actions = APPEND if c == AUDIT or (role, c) in INSERT_ONLY else WRITE
            if role == "txnmon_admin":
                actions = sorted({*actions, *SCHEMA})
            privileges.append({"collection": c, "actions": actions})
        roles[role] = privileges
    return roles


def script_roles() -> dict[str, list[dict]]:
    text = INIT_JS.read_text()
    m = re.search(r"// BEGIN ROLES[^\n]*\nconst ROLES = (.*?);\n// END ROLES", text, re.S)
    assert m, "mongo-init.js: no `const ROLES = {...};` between // BEGIN ROLES and // END ROLES"
    return json.loads(m.group(1))


def test_no_role_can_change_or_delete_an_audit_entry():
    roles = script_roles()
    assert roles, "mongo-init.js defines no role"
    for role, privileges in roles.items():
        for p in privileges:
            actions = set(p["actions"])
            if p["collection"] == "":
                # a database-wide write would include audit_log
                assert actions <= set(READ), (role, sorted(actions - set(READ)))
            elif p["collection"] == AUDIT:
                # the admin role (`txnmon init`) creates the audit trail's indexes; the running components cannot
                allowed = {"insert", "find"} | (set(SCHEMA) if role == "txnmon_admin" else set())
                assert actions <= allowed, (role, sorted(actions - allowed))
        # nothing may come from elsewhere: the script grants the privileges alone, no built-in role
    js = re.sub(r"//[^\n]*", "", INIT_JS.read_text())
    assert "readWrite" not in js and "dbOwner" not in js, "a built-in write role would reach audit_log"
    assert re.search(r"createRole\(\{\s*role: name,\s*privileges: privileges\.map\(", js)
    assert re.search(r"roles: \[\]", js), "a component role inherits nothing"


def test_the_script_holds_the_roles_the_table_gives():
    assert script_roles() == expected_roles(), (
        "docker/mongo-init.js is out of date: paste `python -m tests.unit.test_mongo_roles`")


def _written(role: str) -> set[str]:
    return {p["collection"] for p in script_roles()[role] if set(p["actions"]) & {"insert", "update"}}


def _collections_named_in(module: str) -> set[str]:
    """The collection constants a module imports from txnmon.core.collection_names (and ROLLUP_NAMES)."""
    tree = ast.parse((ROOT / "src" / (module.replace(".", "/") + ".py")).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "txnmon.core.collection_names":
            found |= {getattr(names, a.name) for a in node.names}
        if isinstance(node, ast.ImportFrom) and node.module == "txnmon.core.rollups" and \
                any(a.name in ("ROLLUPS", "ROLLUP_NAMES") for a in node.names):
            found |= set(ROLLUP_NAMES)
    return found


# the modules each component runs that name collections, and what they name but only read
RUNS = {
    "txnmon_processor": (["txnmon.pipeline.sinks", "txnmon.adapters.mongo.watermarks", "txnmon.adapters.mongo.cases",
                          "txnmon.jobs.lists", "txnmon.jobs.audit", "txnmon.adapters.mongo.lists"],
                         {names.LIST_ENTRIES, names.LIST_CHANGES, names.ALERT_DISPOSITIONS}),
    "txnmon_notify": (["txnmon.adapters.mongo.outbox"], set()),
    "txnmon_events": (["txnmon.core.event_batch", "txnmon.pipeline.event_sinks", "txnmon.adapters.mongo.watermarks",
                       "txnmon.jobs.stock", "txnmon.jobs.sentiment", "txnmon.jobs.abandonment",
                       "txnmon.adapters.mongo.leases"],
                      {names.TRANSACTIONS, names.TRENDS}),
    "txnmon_desk": (["txnmon.jobs.cases", "txnmon.jobs.triage", "txnmon.jobs.audit", "txnmon.adapters.mongo.cases",
                     "txnmon.adapters.mongo.lists"],
                    {names.ALERTS, names.SUPPRESSED_ALERTS, names.SHADOW_ALERTS, names.TRANSACTIONS}),
    "txnmon_airflow": (["txnmon.jobs.rollups", "txnmon.jobs.business_signals", "txnmon.jobs.quality",
                        "txnmon.jobs.pipeline_checks", "txnmon.adapters.mongo.leases",
                        "txnmon.adapters.mongo.models"],
                       {names.TRANSACTIONS, names.ALERTS, names.REJECTED, names.WATERMARKS, names.RULE_VERSIONS,
                        names.SUPPRESSED_ALERTS, names.SHADOW_ALERTS, names.CASES, names.ALERT_DISPOSITIONS,
                        names.MODEL_PROMOTION}),
}


def test_each_component_may_write_the_collections_its_code_writes():
    for role, (modules, read_only) in RUNS.items():
        named = set().union(*(_collections_named_in(m) for m in modules))
        missing = named - _written(role) - read_only
        assert not missing, f"{role} runs code naming {sorted(missing)}: grant it in WRITES or list it as read-only"
    # the processor's sinks, live and replayed, are named after the collections they write
    assert set(LIVE) | set(REPLAY) - NOTIFYING <= _written("txnmon_processor") | {"new_notifications"}
    assert set(ROLLUP_NAMES) <= _written("txnmon_airflow")
    assert _written("txnmon_admin") == set().union(*(_written(r) for r in WRITES if r != "txnmon_admin"),
                                                   ADMIN_ONLY)


def test_only_the_admin_can_promote_a_model():
    """The Airflow role registers versions (insert) but can neither change a registered one nor point
    the promotion at one: promotion is `txnmon models promote`, audited (issue 32)."""
    for role, privileges in script_roles().items():
        by_collection = {p["collection"]: set(p["actions"]) for p in privileges}
        versions, promotion = (by_collection.get(c, set()) for c in (names.MODEL_VERSIONS, names.MODEL_PROMOTION))
        if role == "txnmon_admin":
            assert {"insert", "update"} <= promotion and {"insert", "update", "remove"} <= versions
        else:
            assert versions <= {"insert"}, (role, sorted(versions - {"insert"}))
            assert not promotion & {"insert", "update", "remove"}, (role, sorted(promotion))
    assert by_collection  # the loop saw roles
    assert any(p["collection"] == names.MODEL_VERSIONS and p["actions"] == ["insert"]
               for p in script_roles()["txnmon_airflow"]), "the DAG must still register models"


def test_each_compose_service_logs_in_as_its_component():
    compose = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())["services"]
    expected = {"stream-processor": "txnmon_processor", "notify": "txnmon_notify", "dashboard": "txnmon_desk",
                "events": "txnmon_events",
                "airflow-scheduler": "txnmon_airflow", "txnmon-init": "${MONGO_APP_USERNAME:-txnmon}"}
    for service, user in expected.items():
        assert compose[service]["environment"]["MONGO_USERNAME"] == user, service
    conn = json.loads(compose["airflow-scheduler"]["environment"]["AIRFLOW_CONN_MONGO_DEFAULT"]
                      .replace("${MONGO_APP_PASSWORD:?set MONGO_APP_PASSWORD in .env}", "x")
                      .replace("${MONGO_DB:-ecommerce_stream}", "db"))
    assert conn["login"] == "txnmon_airflow"
    js = INIT_JS.read_text()
    for role in WRITES:
        user = "${MONGO_APP_USERNAME:-txnmon}" if role == "txnmon_admin" else role
        if role != "txnmon_admin":
            assert re.search(rf'user: "{user}",[^}}]*roles: \[\{{ role: "{role}", db: dbName \}}\]', js, re.S), role


def roles_js() -> str:
    """The `const ROLES = ...;` statement of mongo-init.js: one role per line."""
    lines = [f"  {json.dumps(role)}: {json.dumps(privileges)}" for role, privileges in expected_roles().items()]
    return "const ROLES = {\n" + ",\n".join(lines) + "\n};"


if __name__ == "__main__":
    print(roles_js())
