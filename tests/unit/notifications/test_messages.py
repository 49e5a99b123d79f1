"""Signing and the messages each destination gets."""

from __future__ import annotations

import hashlib
import hmac
import json

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.notifications.samples import T0, alert
from txnmon.notifications import messages
from txnmon.notifications import routes as routing


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body():
    body = b'{"a":1}'
    expected = hmac.new(b"k3y", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert messages.sign(b"k3y", 1700000000, body) == "sha256=" + expected


@given(st.binary(max_size=200), st.binary(min_size=1, max_size=40), st.integers(1_000_000_000, 3_000_000_000))
def test_verify_accepts_what_sign_made_and_nothing_altered(body, secret, ts):
    signature = messages.sign(secret, ts, body)
    assert messages.verify(secret, str(ts), body, signature, now=ts + 10)
    assert not messages.verify(secret, str(ts), body + b"x", signature, now=ts)
    assert not messages.verify(secret + b"x", str(ts), body, signature, now=ts)
    assert not messages.verify(secret, str(ts + 1), body, signature, now=ts)
    assert not messages.verify(secret, str(ts), body, signature, now=ts + 301)  # a replay, too old
    assert not messages.verify(secret, "soon", body, signature, now=ts)


def test_the_webhook_body_is_the_same_bytes_on_every_retry_and_documents_its_fields(routes):
    [entry, _] = routing.outbox_entries([routing.event_of_alert(alert())], routes, T0)
    body = messages.webhook_body(entry)
    assert body == messages.webhook_body(dict(entry, attempts=3, status="pending"))
    doc = json.loads(body)
    assert doc == {"version": 1, "id": "T1:high_amount|hook", "kind": "alert", "event_id": "T1:high_amount",
                   "destination": "hook", "event": routing.event_of_alert(alert())}
    headers = messages.webhook_headers(entry, body, b"s", 1700000000)
    assert headers["Idempotency-Key"] == "T1:high_amount|hook"
    assert headers["X-Txnmon-Timestamp"] == "1700000000"
    assert messages.verify(b"s", headers["X-Txnmon-Timestamp"], body, headers["X-Txnmon-Signature"], now=1700000001)


def test_chat_and_mail_messages_say_what_happened(routes):
    [_, entry] = routing.outbox_entries([routing.event_of_alert(alert())], routes, T0)
    slack = json.loads(messages.slack_body(entry))
    assert slack["text"] == "[txnmon] HIGH high_amount: user U1, amount 75,000.00 at Mumbai"
    assert any("T1:high_amount|chat" in str(b) for b in slack["blocks"])
    subject, text = messages.email_message(entry)
    assert subject == slack["text"]
    assert "transaction_id  T1" in text and "amount above 50000" in text
    failed = routing.pipeline_event(routing.QUALITY_FAILED, "q1", title="data-quality suite failed in dq.check",
                                   detail="critical expectations failed: <x>", at=T0, dag_id="dq")
    [entry] = routing.outbox_entries([failed], routes, T0)
    slack = json.loads(messages.slack_body(entry))
    assert slack["text"] == "[txnmon] data-quality suite failed in dq.check"
    assert "&lt;x&gt;" in json.dumps(slack["blocks"])
