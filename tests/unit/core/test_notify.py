"""Notifications' pure core: the routes file, routing, outbox ids, signing, backoff, message bodies."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txnmon.core import notify
from txnmon.core.rules.engine import Hit, alert_document
from txnmon.settings import DEFAULT_ROUTES_FILE

T0 = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)

ROUTES = """
version: "7"
destinations:
  hook: {type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET}
  chat: {type: slack, url_env: CHAT_URL, rate_per_second: 1}
  mail: {type: email, smtp_host: 127.0.0.1, smtp_port: 2525, sender: a@example.com, to: [b@example.com]}
  muted: {type: webhook, enabled: false, url_env: OFF_URL, secret_env: OFF_SECRET}
routes:
  - {name: all, events: [alert], to: [hook, muted]}
  - {name: high, events: [alert], min_severity: high, to: [chat, hook]}
  - {name: travel, events: [alert], rules: [impossible_travel], to: [mail]}
  - {name: ops, events: [dag_failed, quality_failed], to: [chat]}
"""


def alert(rule: str = "high_amount", severity: str = "high", mode: str = "live", tid: str = "T1") -> dict:
    tx = {"transaction_id": tid, "user_id": "U1", "amount": 75_000.0, "location": "Mumbai", "event_time": T0}
    hit = Hit(rule=rule, severity=severity, score=50, reason="amount above 50000", mode=mode)
    return alert_document(tx, hit, created_at=T0, rules_version="1+abc")


@pytest.fixture
def routes() -> notify.Routes:
    return notify.parse_routes(ROUTES)


def test_the_shipped_routes_file_is_valid_and_routes_nothing_until_a_destination_is_enabled():
    shipped = notify.parse_routes(DEFAULT_ROUTES_FILE.read_text())
    assert set(shipped.destinations) == {"fraud-webhook", "fraud-chat", "fraud-mail"}
    assert notify.route(notify.event_of_alert(alert()), shipped) == []


def test_routing_follows_event_kind_rule_and_severity_each_destination_once(routes):
    assert notify.route(notify.event_of_alert(alert()), routes) == ["hook", "chat"]
    assert notify.route(notify.event_of_alert(alert("velocity", "medium")), routes) == ["hook"]
    assert notify.route(notify.event_of_alert(alert("impossible_travel", "high")), routes) == ["hook", "chat", "mail"]
    failed = notify.pipeline_event(notify.DAG_FAILED, "dag_failed:x:r1", title="t", detail="d", at=T0)
    assert notify.route(failed, routes) == ["chat"]


def test_shadow_and_suppressed_alerts_are_never_routed(routes):
    assert notify.route(notify.event_of_alert(alert(mode="shadow")), routes) == []
    assert notify.route({**notify.event_of_alert(alert()), "suppressed_by": "T0:high_amount"}, routes) == []


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
    with pytest.raises(notify.RoutesError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        notify.parse_routes(edit(ROUTES), "routes.yaml")


def test_the_version_is_the_label_and_a_hash_of_the_text(routes):
    assert routes.version.startswith("7+")
    assert notify.parse_routes(ROUTES + "\n# edited\n").version != routes.version


def test_outbox_entries_have_one_natural_id_per_alert_and_destination(routes):
    events = [notify.event_of_alert(alert()), notify.event_of_alert(alert(tid="T2", severity="low"))]
    entries = notify.outbox_entries(events, routes, T0)
    assert [e["_id"] for e in entries] == ["T1:high_amount|hook", "T1:high_amount|chat", "T2:high_amount|hook"]
    assert all(e["status"] == notify.PENDING and e["attempts"] == 0 and e["next_attempt_at"] == T0 for e in entries)
    again = notify.outbox_entries(events, routes, T0 + dt.timedelta(hours=1))
    assert [e["_id"] for e in again] == [e["_id"] for e in entries]


def test_an_alert_event_is_json_ready():
    event = notify.event_of_alert(alert())
    assert event["event_time"] == "2025-10-01T12:00:00Z" and event["id"] == "T1:high_amount"
    json.dumps(event)


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body():
    body = b'{"a":1}'
    expected = hmac.new(b"k3y", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert notify.sign(b"k3y", 1700000000, body) == "sha256=" + expected


@given(st.binary(max_size=200), st.binary(min_size=1, max_size=40), st.integers(1_000_000_000, 3_000_000_000))
def test_verify_accepts_what_sign_made_and_nothing_altered(body, secret, ts):
    signature = notify.sign(secret, ts, body)
    assert notify.verify(secret, str(ts), body, signature, now=ts + 10)
    assert not notify.verify(secret, str(ts), body + b"x", signature, now=ts)
    assert not notify.verify(secret + b"x", str(ts), body, signature, now=ts)
    assert not notify.verify(secret, str(ts + 1), body, signature, now=ts)
    assert not notify.verify(secret, str(ts), body, signature, now=ts + 301)  # a replay, too old
    assert not notify.verify(secret, "soon", body, signature, now=ts)


@given(st.integers(1, 40), st.floats(0, 1))
def test_backoff_doubles_up_to_the_cap_and_jitter_stays_within_half_a_step(attempts, jitter):
    delay = notify.backoff_delay(attempts, base=2.0, cap=600.0, jitter=jitter)
    step = min(600.0, 2.0 * 2 ** (attempts - 1))
    assert step / 2 <= delay <= step
    assert notify.backoff_delay(attempts + 1, base=2.0, cap=600.0, jitter=jitter) >= delay


def test_the_webhook_body_is_the_same_bytes_on_every_retry_and_documents_its_fields(routes):
    [entry, _] = notify.outbox_entries([notify.event_of_alert(alert())], routes, T0)
    body = notify.webhook_body(entry)
    assert body == notify.webhook_body(dict(entry, attempts=3, status="pending"))
    doc = json.loads(body)
    assert doc == {"version": 1, "id": "T1:high_amount|hook", "kind": "alert", "event_id": "T1:high_amount",
                   "destination": "hook", "event": notify.event_of_alert(alert())}
    headers = notify.webhook_headers(entry, body, b"s", 1700000000)
    assert headers["Idempotency-Key"] == "T1:high_amount|hook"
    assert headers["X-Txnmon-Timestamp"] == "1700000000"
    assert notify.verify(b"s", headers["X-Txnmon-Timestamp"], body, headers["X-Txnmon-Signature"], now=1700000001)


def test_chat_and_mail_messages_say_what_happened(routes):
    [_, entry] = notify.outbox_entries([notify.event_of_alert(alert())], routes, T0)
    slack = json.loads(notify.slack_body(entry))
    assert slack["text"] == "[txnmon] HIGH high_amount: user U1, amount 75,000.00 at Mumbai"
    assert any("T1:high_amount|chat" in str(b) for b in slack["blocks"])
    subject, text = notify.email_message(entry)
    assert subject == slack["text"]
    assert "transaction_id  T1" in text and "amount above 50000" in text
    failed = notify.pipeline_event(notify.QUALITY_FAILED, "q1", title="data-quality suite failed in dq.check",
                                   detail="critical expectations failed: <x>", at=T0, dag_id="dq")
    [entry] = notify.outbox_entries([failed], routes, T0)
    slack = json.loads(notify.slack_body(entry))
    assert slack["text"] == "[txnmon] data-quality suite failed in dq.check"
    assert "&lt;x&gt;" in json.dumps(slack["blocks"])


def test_the_rate_limit_allows_a_burst_then_the_rate():
    slot = functools.partial(notify.rate_slot, rate=2.0, burst=2)
    tat, wait = slot(None, 100.0)  # never sent: go
    assert (tat, wait) == (100.5, 0.0)
    tat, wait = slot(tat, 100.0)  # the burst's second send
    assert (tat, wait) == (101.0, 0.0)
    assert slot(tat, 100.0) == (None, pytest.approx(0.5))  # then one every 0.5 s
    assert slot(tat, 100.5) == (101.5, 0.0)
    assert slot(50.0, 100.0) == (100.5, 0.0)  # a quiet spell gives the burst back, never more
    # a tat far ahead (a worker's clock ran fast, or this one stepped back) costs one interval, not the error
    assert slot(100.0 + 3600, 100.0) == (None, pytest.approx(0.5))


@given(st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=60), st.floats(0.5, 50), st.integers(1, 5))
def test_no_window_sees_more_than_the_burst_plus_the_rate(gaps, rate, burst):
    """However sends are attempted, the ones allowed in any span T are at most burst + T x rate."""
    tat, now, sent = None, 1000.0, []
    for gap in gaps:
        now += gap / 10
        new, _wait = notify.rate_slot(tat, now, rate, burst)
        if new is not None:
            tat = new
            sent.append(now)
    for i, first in enumerate(sent):
        for j in range(i, len(sent)):
            assert j - i + 1 <= burst + (sent[j] - first) * rate + 1e-6


def test_retry_after_and_permanence_of_http_answers():
    assert notify.retry_after_seconds("30", now=T0) == 30.0
    assert notify.retry_after_seconds("Wed, 01 Oct 2025 12:00:10 GMT", now=T0) == 10.0
    assert notify.retry_after_seconds("later", now=T0) is None
    assert [s for s in (400, 401, 404, 408, 409, 425, 429, 500, 503) if notify.is_permanent(s)] == [400, 401, 404]
