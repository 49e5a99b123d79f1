"""Cart-abandonment interventions as notification events: routed by kind, once per intervention, and
their user-supplied ids are data in every message (JSON-encoded, escaped for chat mrkdwn)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.unit.notifications.samples import T0, alert
from txnmon.notifications import messages
from txnmon.notifications import routes as routing
from txnmon.settings import DEFAULT_ROUTES_FILE

ROUTES = """
version: "1"
destinations:
  hook: {type: webhook, url_env: TXNMON_NOTIFY_HOOK_URL, secret_env: TXNMON_NOTIFY_HOOK_SECRET}
  chat: {type: slack, url_env: TXNMON_NOTIFY_CHAT_URL}
routes:
  - {name: fraud, events: [alert], to: [chat]}
  - {name: carts, events: [intervention], to: [hook, chat]}
"""

HOSTILE = "<!channel> *bold* <https://evil.example|click> & co"


def intervention(user: str = "U1") -> dict:
    return {"_id": "repeat_abandoner:K1", "trigger": "repeat_abandoner", "user_id": user, "cart": "K1",
            "at": T0 + dt.timedelta(hours=1), "products": ["Mouse"], "value": 12.5, "payment_method": "UPI",
            "carts": ["K0", "K1"]}


def test_an_intervention_goes_where_its_routes_send_it_once_per_destination():
    routes = routing.parse_routes(ROUTES)
    event = routing.intervention_event(intervention())
    assert event["kind"] == routing.INTERVENTION and event["id"] == "repeat_abandoner:K1"
    assert event["at"] == "2025-10-01T13:00:00Z"
    entries = routing.outbox_entries([event, event], routes, T0)
    assert sorted({e["_id"] for e in entries}) == ["repeat_abandoner:K1|chat", "repeat_abandoner:K1|hook"]


def test_the_shipped_routes_send_interventions_to_their_own_webhook_once_enabled():
    text = DEFAULT_ROUTES_FILE.read_text().replace("enabled: false\n    url_env: TXNMON_NOTIFY_INTERVENTION",
                                                   "enabled: true\n    url_env: TXNMON_NOTIFY_INTERVENTION")
    shipped = routing.parse_routes(text)
    assert routing.route(routing.intervention_event(intervention()), shipped) == ["interventions-webhook"]


def test_hostile_ids_are_data_in_the_webhook_and_escaped_in_chat():
    routes = routing.parse_routes(ROUTES)
    entries = {e["destination"]: e for e in routing.outbox_entries(
        [routing.intervention_event(intervention(HOSTILE))], routes, T0)}
    body = json.loads(messages.webhook_body(entries["hook"]))
    assert body["event"]["user_id"] == HOSTILE and body["kind"] == "intervention"
    chat = json.loads(messages.slack_body(entries["chat"]))
    shown = " ".join(b["text"]["text"] for b in chat["blocks"] if b["type"] == "section")
    assert "<!channel>" not in shown and "<https://evil.example" not in shown
    assert "&lt;!channel&gt;" in shown


def _strings(doc: object) -> list[str]:
    """Every string anywhere in a JSON document (keys included)."""
    if isinstance(doc, dict):
        return [s for k, v in doc.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(doc, list):
        return [s for v in doc for s in _strings(v)]
    return [doc] if isinstance(doc, str) else []


@pytest.mark.parametrize("kind", ["intervention", "alert", "pipeline"])
def test_no_hostile_markup_anywhere_in_the_chat_payload_whatever_the_event_kind(kind):
    if kind == "intervention":
        doc = {**intervention(HOSTILE), "cart": HOSTILE, "_id": f"repeat_abandoner:{HOSTILE}", "carts": [HOSTILE]}
        event = routing.intervention_event(doc)
    elif kind == "alert":
        event = {**alert(), "user_id": HOSTILE, "alert_id": HOSTILE, "location": HOSTILE, "rule": HOSTILE}
    else:
        event = routing.pipeline_event("dag_failed", HOSTILE, title=HOSTILE, detail=HOSTILE, at=T0)
    entry = {"_id": f"{event.get('id', HOSTILE)}|chat", "event": event}
    chat = json.loads(messages.slack_body(entry))
    shown = _strings(chat)
    assert any("&lt;!channel&gt;" in s for s in shown)  # the hostile text is there, as data
    for s in shown:
        assert "<!channel>" not in s and "<https://evil.example" not in s, s
        assert s.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "").count("&") == 0, s
