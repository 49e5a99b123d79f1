"""Notifications as pure data and functions: the routes file, routing, outbox entries, signing,
backoff and the messages each kind of destination gets.

The routes file (YAML, `NOTIFY_ROUTES_FILE`) names destinations and says which events go where:

    version: "1"
    destinations:
      fraud-webhook: {type: webhook, url_env: TXNMON_WEBHOOK_URL, secret_env: TXNMON_WEBHOOK_SECRET}
      fraud-chat:    {type: slack, url_env: TXNMON_SLACK_WEBHOOK_URL, rate_per_second: 1}
      fraud-mail:    {type: email, smtp_host: smtp.example.com, to: [fraud@example.com], sender: txnmon@example.com,
                      username_env: TXNMON_SMTP_USERNAME, password_env: TXNMON_SMTP_PASSWORD}
    routes:
      - {name: high, events: [alert], min_severity: high, to: [fraud-webhook, fraud-chat]}
      - {name: pipeline, events: [dag_failed, quality_failed], to: [fraud-chat]}

The file holds no secret: a destination names the environment variables that carry its URL (which
often embeds a token), its HMAC secret and its SMTP login; only the worker that delivers reads them.
No clock and no I/O here: times are passed in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from txnmon.core.rules.rulebook import SEVERITY_ORDER, Severity
from txnmon.core.versioned_files import parse_versioned
from txnmon.errors import InvalidInputFile

__all__ = [
    "ALERT",
    "DAG_FAILED",
    "QUALITY_FAILED",
    "Routes",
    "RoutesError",
    "backoff_delay",
    "email_message",
    "outbox_entries",
    "parse_routes",
    "rate_slot",
    "route",
    "sign",
    "slack_body",
    "verify",
    "webhook_body",
]

ALERT = "alert"
DAG_FAILED = "dag_failed"  # an Airflow task failed for good (the notifier of the DAGs)
QUALITY_FAILED = "quality_failed"  # a data-quality suite failed a critical expectation
EVENT_KINDS = (ALERT, DAG_FAILED, QUALITY_FAILED)

PENDING, SENT, DEAD = "pending", "sent", "dead"  # an outbox entry's status
SIGNATURE_HEADER = "X-Txnmon-Signature"
TIMESTAMP_HEADER = "X-Txnmon-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
PAYLOAD_VERSION = 1

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_DEST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class RoutesError(InvalidInputFile):
    """The routes file is missing or invalid; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


EnvName = Annotated[str, Field(pattern=_ENV_NAME.pattern, description="an environment variable's name")]


class DestinationBase(_Strict):
    enabled: bool = True  # a disabled destination is routed nothing (entries already queued still go)
    rate_per_second: float = Field(10.0, gt=0, le=10_000)  # over all workers (NOTIFY_RATES)
    timeout_seconds: float = Field(10.0, gt=0, le=120)


class Webhook(DestinationBase):
    type: Literal["webhook"]
    url_env: EnvName  # the URL may carry a token: it comes from the environment
    secret_env: EnvName  # the HMAC-SHA256 key


class Slack(DestinationBase):
    type: Literal["slack"]
    url_env: EnvName  # a Slack (or compatible) incoming-webhook URL, a secret in itself


class Email(DestinationBase):
    type: Literal["email"]
    smtp_host: str = Field(min_length=1)
    smtp_port: int = Field(25, ge=1, le=65535)
    starttls: bool = False  # STARTTLS before logging in (port 587); `ssl` for implicit TLS (465)
    ssl: bool = False
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)
    username_env: EnvName | None = None
    password_env: EnvName | None = None
    rate_per_second: float = Field(2.0, gt=0, le=10_000)

    @model_validator(mode="after")
    def _login_pair(self) -> Email:
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("username_env and password_env go together")
        if self.ssl and self.starttls:
            raise ValueError("ssl (implicit TLS) and starttls exclude each other")
        return self


Destination = Annotated[Webhook | Slack | Email, Field(discriminator="type")]


class Route(_Strict):
    name: str = Field(min_length=1)
    events: list[Literal["alert", "dag_failed", "quality_failed"]] = Field(default_factory=lambda: [ALERT],
                                                                          min_length=1)
    rules: list[str] | None = None  # alerts of these rules only (None: any)
    min_severity: Severity | None = None  # alerts at or above this severity only
    to: list[str] = Field(min_length=1)


class Routes(_Strict):
    """A validated routes file. `version` is its label plus a hash of its content."""

    version: str = ""
    destinations: dict[str, Destination] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)

    @field_validator("destinations")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not _DEST_NAME.match(name):
                raise ValueError(f"destination name {name!r}: letters, digits, '.', '_', '-' (1-64 chars)")
        return value

    @model_validator(mode="after")
    def _known_destinations(self) -> Routes:
        for i, r in enumerate(self.routes):
            unknown = [d for d in r.to if d not in self.destinations]
            if unknown:
                raise ValueError(f"routes[{i}] ({r.name}): unknown destination(s) {', '.join(unknown)}")
        return self


def parse_routes(text: str, source: str = "<routes>") -> Routes:
    """Validate routes YAML text; every problem is named with its path, nothing secret is echoed."""
    return parse_versioned(text, source, Routes, RoutesError, "routes")


# --- routing -------------------------------------------------------------------------------------


def route(event: Mapping[str, Any], routes: Routes) -> list[str]:
    """The enabled destinations an event goes to, in the file's order, each once.

    `event` is an alert document (kind `alert`) or a pipeline event with a `kind`. Only raised
    alerts reach here: suppressed and shadow alerts are stored apart and never routed; an alert
    document in mode `shadow` is refused here too, whatever the routes say.
    """
    kind = event.get("kind", ALERT)
    if kind == ALERT and (event.get("mode", "live") != "live" or event.get("suppressed_by")):
        return []
    out: list[str] = []
    for r in routes.routes:
        if kind not in r.events:
            continue
        if kind == ALERT:
            if r.rules is not None and event.get("rule") not in r.rules:
                continue
            if r.min_severity is not None and (
                    SEVERITY_ORDER.get(str(event.get("severity")), -1) < SEVERITY_ORDER[r.min_severity]):
                continue
        for name in r.to:
            if name not in out and routes.destinations[name].enabled:
                out.append(name)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


ALERT_FIELDS = ("alert_id", "transaction_id", "user_id", "rule", "severity", "reason", "amount", "location",
                "event_time", "created_at", "rules_version", "mode", "suppressed_by", "explanation")


def event_of_alert(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The part of an alert document a notification carries (JSON-ready: times as ISO-8601 UTC)."""
    return {"kind": ALERT, "id": str(alert["alert_id"]),
            **{k: _plain(alert[k]) for k in ALERT_FIELDS if k in alert}}


def pipeline_event(kind: str, event_id: str, *, title: str, detail: str, at: dt.datetime,
                   **fields: Any) -> dict[str, Any]:
    """A DAG failure or a failed quality suite as an event (`event_id` natural: a retry repeats it)."""
    if kind not in (DAG_FAILED, QUALITY_FAILED):
        raise ValueError(f"not a pipeline event kind: {kind!r}")
    return {"kind": kind, "id": event_id, "title": title, "detail": detail[:4000], "at": _plain(at),
            **{k: _plain(v) for k, v in fields.items()}}


def notification_id(event_id: str, destination: str) -> str:
    """One outbox entry per (event, destination): the same id whenever the decision is made again."""
    return f"{event_id}|{destination}"


def outbox_entries(events: Iterable[Mapping[str, Any]], routes: Routes, now: dt.datetime) -> list[dict[str, Any]]:
    """The outbox documents for these events under these routes (insert-if-absent by `_id`)."""
    out = []
    for event in events:
        for destination in route(event, routes):
            out.append({"_id": notification_id(str(event["id"]), destination), "event_id": str(event["id"]),
                        "kind": event.get("kind", ALERT), "destination": destination, "event": dict(event),
                        "status": PENDING, "attempts": 0, "created_at": now, "next_attempt_at": now,
                        "lease_owner": None, "lease_until": None, "routes_version": routes.version})
    return out


# --- delivery: backoff, signing, message bodies ---------------------------------------------------


def backoff_delay(attempts: int, *, base: float, cap: float, jitter: float) -> float:
    """Seconds before the next try after `attempts` failed ones: exponential, capped, with "equal
    jitter" (`jitter` in [0, 1), from the caller's random source): half the step fixed, half random,
    so workers that failed together do not come back together, and no retry is sooner than half."""
    if attempts < 1:
        return 0.0
    step = min(cap, base * 2 ** min(attempts - 1, 60))
    return step / 2 + step / 2 * min(max(jitter, 0.0), 1.0)


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


def webhook_body(entry: Mapping[str, Any]) -> bytes:
    """The generic webhook's JSON body (docs/notifications.md): identical on every retry."""
    event = dict(entry["event"])
    doc = {"version": PAYLOAD_VERSION, "id": entry["_id"], "kind": entry["kind"], "event_id": entry["event_id"],
           "destination": entry["destination"], "event": event}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def webhook_headers(entry: Mapping[str, Any], body: bytes, secret: bytes, timestamp: int) -> dict[str, str]:
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
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"txnmon notification {entry['_id']}"}]})
    doc = {"text": headline(event), "blocks": blocks}
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


def retry_after_seconds(value: str | None, *, now: dt.datetime) -> float | None:
    """An HTTP Retry-After header (seconds or an HTTP date) as seconds from `now`; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - now).total_seconds())


def is_permanent(status: int) -> bool:
    """An HTTP answer that no retry will change: a 4xx other than timeout, conflict-in-progress, too early
    and too many requests. Such an entry is dead-lettered at once, with the answer."""
    return 400 <= status < 500 and status not in (408, 409, 425, 429)


def rate_slot(tat: float | None, now: float, rate: float, burst: float) -> tuple[float | None, float]:
    """The generic cell rate algorithm: `rate` sends per second on average, bursts of up to `burst`.

    `tat` is the destination's theoretical arrival time (epoch seconds; None: never sent). Returns
    (the new tat, 0) when a send may go now, or (None, seconds to wait) when not. One number per
    destination is the whole state, so workers can share it in one document (NOTIFY_RATES)."""
    interval = 1.0 / rate
    # a tat is never more than a burst ahead of the clock unless a clock was wrong (a worker's ran fast,
    # or stepped back): capped, so that costs at most one interval, not the size of the error
    start = now if tat is None or tat < now else min(tat, now + max(burst, 1.0) * interval)
    wait = start - now - (max(burst, 1.0) - 1.0) * interval
    if wait > 1e-9:
        return None, wait
    return start + interval, 0.0
