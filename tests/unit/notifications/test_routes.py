"""The routes file, routing, events and outbox ids."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.unit.notifications.samples import ROUTES, T0, alert
from txnmon.notifications import routes as routing
from txnmon.settings import DEFAULT_ROUTES_FILE


def test_the_shipped_routes_file_is_valid_and_routes_nothing_until_a_destination_is_enabled():
    shipped = routing.parse_routes(DEFAULT_ROUTES_FILE.read_text())
    assert set(shipped.destinations) == {"fraud-webhook", "fraud-chat", "fraud-mail"}
    assert routing.route(routing.event_of_alert(alert()), shipped) == []


def test_routing_follows_event_kind_rule_and_severity_each_destination_once(routes):
    assert routing.route(routing.event_of_alert(alert()), routes) == ["hook", "chat"]
    assert routing.route(routing.event_of_alert(alert("velocity", "medium")), routes) == ["hook"]
    assert routing.route(routing.event_of_alert(alert("impossible_travel", "high")), routes) == ["hook", "chat", "mail"]
    failed = routing.pipeline_event(routing.DAG_FAILED, "dag_failed:x:r1", title="t", detail="d", at=T0)
    assert routing.route(failed, routes) == ["chat"]


def test_shadow_and_suppressed_alerts_are_never_routed(routes):
    assert routing.route(routing.event_of_alert(alert(mode="shadow")), routes) == []
    assert routing.route({**routing.event_of_alert(alert()), "suppressed_by": "T0:high_amount"}, routes) == []


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t: t.replace("to: [chat]}", "to: [pager]}"), "unknown destination(s) pager"),
    (lambda t: t.replace("url_env: HOOK_URL", "url_env: https://hooks.example/abc"), "destinations.hook"),
    (lambda t: t.replace("rate_per_second: 1}", "rate_per_second: 1, rate: 2}"), "unknown setting"),
    (lambda t: t.replace("min_severity: high", "min_severity: huge"), "min_severity"),
    (lambda t: t.replace("to: [b@example.com]}", "to: [b@example.com], username_env: SMTP_USER}"),
     "username_env and password_env go together"),
    (lambda t: t + "  - {name: empty, to: []}\n", "routes.4.to"),
    (lambda t: "destinations: [1, 2]", "destinations"),
    (lambda t: "routes: [", "not valid YAML at line"),
])
def test_a_bad_routes_file_is_refused_naming_the_problem(edit, message):
    with pytest.raises(routing.RoutesError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        routing.parse_routes(edit(ROUTES), "routes.yaml")


def test_the_version_is_the_label_and_a_hash_of_the_text(routes):
    assert routes.version.startswith("7+")
    assert routing.parse_routes(ROUTES + "\n# edited\n").version != routes.version


def test_outbox_entries_have_one_natural_id_per_alert_and_destination(routes):
    events = [routing.event_of_alert(alert()), routing.event_of_alert(alert(tid="T2", severity="low"))]
    entries = routing.outbox_entries(events, routes, T0)
    assert [e["_id"] for e in entries] == ["T1:high_amount|hook", "T1:high_amount|chat", "T2:high_amount|hook"]
    assert all(e["status"] == routing.PENDING and e["attempts"] == 0 and e["next_attempt_at"] == T0 for e in entries)
    again = routing.outbox_entries(events, routes, T0 + dt.timedelta(hours=1))
    assert [e["_id"] for e in again] == [e["_id"] for e in entries]


def test_an_alert_event_is_json_ready():
    event = routing.event_of_alert(alert())
    assert event["event_time"] == "2025-10-01T12:00:00Z" and event["id"] == "T1:high_amount"
    json.dumps(event)
