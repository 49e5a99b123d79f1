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
    assert set(shipped.destinations) == {"fraud-webhook", "fraud-chat", "fraud-mail", "interventions-webhook"}
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
    (lambda t: t.replace("url_env: TXNMON_NOTIFY_HOOK_URL", "url_env: https://hooks.example/abc"), "destinations.hook"),
    (lambda t: t.replace("rate_per_second: 1}", "rate_per_second: 1, rate: 2}"), "unknown setting"),
    (lambda t: t.replace("min_severity: high", "min_severity: huge"), "min_severity"),
    (lambda t: t.replace("to: [b@example.com]}", "to: [b@example.com], username_env: TXNMON_NOTIFY_SMTP_USER}"),
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


# --- the routes file may not send the worker's secrets anywhere (issue 27, item 10) ---------------

def _mail(host: str) -> str:
    return ROUTES.replace("smtp_host: 127.0.0.1", f"smtp_host: '{host}'")


@pytest.mark.parametrize("field", ["url_env", "secret_env"])
def test_an_env_field_may_only_name_a_notify_variable(field):
    text = ROUTES.replace(f"{field}: TXNMON_NOTIFY_HOOK_{'URL' if field == 'url_env' else 'SECRET'}",
                          f"{field}: MONGO_PASSWORD")
    with pytest.raises(routing.RoutesError, match=rf"destinations\.hook\.webhook\.{field}: .*TXNMON_NOTIFY_"):
        routing.parse_routes(text, "routes.yaml")


def test_smtp_login_variables_need_the_prefix_too():
    text = ROUTES.replace("to: [b@example.com]}", "to: [b@example.com], username_env: TXNMON_NOTIFY_U, "
                                                  "password_env: KAFKA_SASL_PASSWORD}")
    with pytest.raises(routing.RoutesError, match=r"destinations\.mail\.email\.password_env"):
        routing.parse_routes(text, "routes.yaml")


def test_an_smtp_host_off_the_allow_list_is_refused_naming_destination_and_field():
    with pytest.raises(routing.RoutesError, match=r"destinations\.mail\.smtp_host: host smtp\.evil\.example is not "
                                                  r"in NOTIFY_ALLOWED_HOSTS"):
        routing.parse_routes(_mail("smtp.evil.example"), "routes.yaml")
    allowed = ("smtp.example.com", "*.mail.example.org", "10.0.0.0/8")
    for host in ("smtp.example.com", "SMTP.Example.com.", "eu.mail.example.org", "10.1.2.3"):
        assert routing.parse_routes(_mail(host), allowed_hosts=allowed).destinations["mail"].smtp_host == host
    for host in ("mail.example.org", "smtp.example.com.evil.example", "11.0.0.1", "127.0.0.1"):
        with pytest.raises(routing.RoutesError, match="not in NOTIFY_ALLOWED_HOSTS"):
            routing.parse_routes(_mail(host), allowed_hosts=allowed)


@pytest.mark.parametrize("host", ["169.254.169.254", "::ffff:169.254.169.254", "fe80::1", "metadata.google.internal",
                                  "METADATA.google.internal.", "2852039166", "0xa9.0xfe.0xa9.0xfe"])
def test_link_local_and_metadata_hosts_are_refused_even_when_listed(host):
    with pytest.raises(routing.RoutesError, match=r"destinations\.mail\.smtp_host: host .* never allowed"):
        routing.parse_routes(_mail(host), allowed_hosts=(host, "169.254.0.0/16", "fe80::/10", "*.google.internal"))


def test_a_url_in_the_workers_environment_is_checked_and_never_echoed():
    env = {"TXNMON_NOTIFY_HOOK_URL": "http://169.254.169.254/latest/meta-data/?token=s3cr3t",
           "TXNMON_NOTIFY_CHAT_URL": "https://hooks.internal.example/T0/B0/s3cr3t"}
    with pytest.raises(routing.RoutesError) as refused:
        routing.parse_routes(ROUTES, "routes.yaml", env=env)
    message = str(refused.value)
    assert "destinations.hook.url_env: the URL in TXNMON_NOTIFY_HOOK_URL: host 169.254.169.254" in message
    assert "destinations.chat.url_env: the URL in TXNMON_NOTIFY_CHAT_URL: host hooks.internal.example is not in" \
           in message
    assert "s3cr3t" not in message
    ok = {"TXNMON_NOTIFY_HOOK_URL": "http://127.0.0.1:8080/hook", "TXNMON_NOTIFY_CHAT_URL": "https://[::1]/c"}
    assert routing.parse_routes(ROUTES, env=ok).destinations["hook"]
    # an unset variable is not judged here: the delivery reports it missing
    assert routing.parse_routes(ROUTES, env={}).destinations["chat"]
    assert routing.url_refusal("ftp://127.0.0.1/x", ("127.0.0.1",)) == "the URL must start with http:// or https://"
    assert "evil.example" in routing.url_refusal("http://127.0.0.1@evil.example/", ("127.0.0.1",))


def test_the_shipped_routes_file_names_only_notify_variables_and_allowed_hosts():
    from txnmon.settings import Settings

    shipped = routing.parse_routes(DEFAULT_ROUTES_FILE.read_text(),
                                   allowed_hosts=Settings().notify_allowed_host_list)
    assert shipped.destinations["fraud-mail"].smtp_host == "127.0.0.1"
