"""Signing and the messages each destination gets."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.notifications.samples import ROUTES, T0, alert
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


DOCS = Path(__file__).resolve().parents[3] / "docs" / "notifications.md"


def _signed_delivery(routes, secret: bytes, ts: int) -> tuple[dict[str, str], bytes]:
    [entry, _] = routing.outbox_entries([routing.event_of_alert(alert())], routes, T0)
    body = messages.webhook_body(entry)
    return messages.webhook_headers(entry, body, secret, ts), body


@given(st.text(min_size=1, max_size=40).filter(lambda s: s != "T1:high_amount|hook"))
def test_the_signature_covers_the_id_receivers_dedupe_on(other_id):
    headers, body = _signed_delivery(routing.parse_routes(ROUTES), b"s", 1700000000)
    ts, signature = headers["X-Txnmon-Timestamp"], headers["X-Txnmon-Signature"]
    assert messages.verified_id(b"s", ts, body, signature, now=1700000001) == "T1:high_amount|hook"
    forged = json.dumps(dict(json.loads(body), id=other_id), sort_keys=True, separators=(",", ":"),
                        ensure_ascii=False).encode()
    assert messages.verified_id(b"s", ts, forged, signature, now=1700000001) is None
    assert not messages.verify(b"s", ts, forged, signature, now=1700000001)


def _documented_receiver(secret: str, monkeypatch) -> tuple[Callable[..., int], list[dict]]:
    """The receiver recipe of docs/notifications.md, run as written (its `act` records the events)."""
    text = DOCS.read_text()
    section = text[text.index("### Verifying a webhook (receiver side)"):]
    code = section[section.index("```python\n") + len("```python\n"):section.index("```\n", 10)]
    monkeypatch.setenv("TXNMON_NOTIFY_WEBHOOK_SECRET", secret)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)  # the documentation's own code, as a reader copies it
    acted: list[dict] = []
    namespace["act"] = acted.append
    return namespace["handle"], acted


def test_the_documented_receiver_acts_once_on_a_replay_under_a_new_idempotency_key(routes, monkeypatch):
    handle, acted = _documented_receiver("s3cret", monkeypatch)
    headers, body = _signed_delivery(routes, b"s3cret", int(time.time()))
    assert handle(dict(headers), body) == 200
    assert handle(dict(headers), body) == 200  # a retry after a worker crash
    replay = dict(headers, **{"Idempotency-Key": "something-new"})  # the header is not signed
    assert handle(replay, body) == 200
    assert acted == [json.loads(body)["event"]]
    tampered = body.replace(b'"id":"T1:high_amount|hook"', b'"id":"T1:high_amount|hook2"')
    assert tampered != body and handle(dict(headers), tampered) == 401
    assert len(acted) == 1
