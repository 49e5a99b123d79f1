"""What each kind of destination receives: the signed webhook body and headers, the chat message, the
mail. Pure: the same outbox entry gives the same bytes on every retry (the receiver's dedup and the
signature depend on it). Hostile alert fields are data: JSON-encoded, or escaped for chat mrkdwn.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from txnmon.notifications.routes import ALERT

SIGNATURE_HEADER = "X-Txnmon-Signature"
TIMESTAMP_HEADER = "X-Txnmon-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
PAYLOAD_VERSION = 1


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>"): the X-Txnmon-Signature value."""
    mac = hmac.new(secret, str(int(timestamp)).encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, *, now: float,
           tolerance_s: float = 300.0) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent (replays refused)."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


def verified_id(secret: bytes, timestamp: str, body: bytes, signature: str, *, now: float,
                tolerance_s: float = 300.0) -> str | None:
    """What a receiver dedupes on: the body's `id`, once the signature and the timestamp check out
    (None otherwise). The id is inside the signed body, so a captured body cannot be re-sent under
    another id; the Idempotency-Key header is not signed and must not be what repeats are dropped by."""
    if not verify(secret, timestamp, body, signature, now=now, tolerance_s=tolerance_s):
        return None
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    notification_id = doc.get("id") if isinstance(doc, dict) else None
    return notification_id if isinstance(notification_id, str) and notification_id else None


def webhook_body(entry: Mapping[str, Any]) -> bytes:
    """The generic webhook's JSON body (docs/notifications.md): identical on every retry."""
    event = dict(entry["event"])
    doc = {"version": PAYLOAD_VERSION, "id": entry["_id"], "kind": entry["kind"], "event_id": entry["event_id"],
           "destination": entry["destination"], "event": event}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def webhook_headers(entry: Mapping[str, Any], body: bytes, secret: bytes, timestamp: int) -> dict[str, str]:
    # Idempotency-Key repeats the signed body's id for receivers that log it; it is not signed, so
    # docs/notifications.md has receivers dedupe on the body's id (verified_id)
    return {"Content-Type": "application/json", TIMESTAMP_HEADER: str(int(timestamp)),
            SIGNATURE_HEADER: sign(secret, timestamp, body), IDEMPOTENCY_HEADER: str(entry["_id"]),
            "User-Agent": "txnmon-notify/1"}


def headline(event: Mapping[str, Any]) -> str:
    """One line for people: the subject of a mail, the first line of a chat message."""
    kind = event.get("kind", ALERT)
    if kind == ALERT:
        amount = event.get("amount")
        money = f"{amount:,.2f}" if isinstance(amount, (int, float)) else str(amount)
        return (f"[txnmon] {str(event.get('severity', '?')).upper()} {event.get('rule')}: user {event.get('user_id')}, "
                f"amount {money} at {event.get('location')}")
    return f"[txnmon] {event.get('title', kind)}"


def _details(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    if event.get("kind", ALERT) == ALERT:
        keys = ("alert_id", "transaction_id", "user_id", "rule", "severity", "reason", "amount", "location",
                "event_time", "rules_version")
    else:
        keys = tuple(k for k in event if k not in ("kind", "title", "detail"))
    return [(k, str(event[k])) for k in keys if k in event and event[k] is not None]


def slack_body(entry: Mapping[str, Any]) -> bytes:
    """A Slack-compatible incoming-webhook message: `text` (the fallback every client shows) and blocks."""
    event = entry["event"]
    fields = "\n".join(f"*{k}*: {v}" for k, v in _details(event))
    extra = event.get("detail") or ""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_escape(headline(event))}*"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _escape(fields)[:2900] or "-"}},
    ]
    if extra:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "```" + _escape(extra)[:2800] + "```"}})
    # the entry id holds the event id (an intervention's holds the cart id) and the fallback `text` is
    # mrkdwn too: every user-supplied string is escaped wherever it lands, or <!channel> gets through
    blocks.append({"type": "context",
                   "elements": [{"type": "mrkdwn", "text": f"txnmon notification {_escape(str(entry['_id']))}"}]})
    doc = {"text": _escape(headline(event)), "blocks": blocks}
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def _escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def email_message(entry: Mapping[str, Any]) -> tuple[str, str]:
    """(subject, plain-text body) of the mail for an outbox entry."""
    event = entry["event"]
    lines = [headline(event).removeprefix("[txnmon] "), ""]
    width = max((len(k) for k, _ in _details(event)), default=0)
    lines += [f"{k:<{width}}  {v}" for k, v in _details(event)]
    if event.get("detail"):
        lines += ["", str(event["detail"])]
    lines += ["", f"notification {entry['_id']} (txnmon)"]
    subject = headline(event).replace("\n", " ")[:200]
    return subject, "\n".join(lines) + "\n"
