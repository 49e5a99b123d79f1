"""Which events go where: the routes file, routing, the events and the outbox entries they become.

The routes file (YAML, `NOTIFY_ROUTES_FILE`) names destinations and says which events go where:

    version: "1"
    destinations:
      fraud-webhook: {type: webhook, url_env: TXNMON_NOTIFY_WEBHOOK_URL, secret_env: TXNMON_NOTIFY_WEBHOOK_SECRET}
      fraud-chat:    {type: slack, url_env: TXNMON_NOTIFY_SLACK_WEBHOOK_URL, rate_per_second: 1}
      fraud-mail:    {type: email, smtp_host: smtp.example.com, to: [fraud@example.com], sender: txnmon@example.com,
                      username_env: TXNMON_NOTIFY_SMTP_USERNAME, password_env: TXNMON_NOTIFY_SMTP_PASSWORD}
    routes:
      - {name: high, events: [alert], min_severity: high, to: [fraud-webhook, fraud-chat]}
      - {name: pipeline, events: [dag_failed, quality_failed], to: [fraud-chat]}

The file holds no secret: a destination names the environment variables that carry its URL (which
often embeds a token), its HMAC secret and its SMTP login; only the worker that delivers reads them.

Whoever edits the (hot-reloaded) file must not be able to send the worker's other secrets anywhere:
a `*_env` field may only name a variable starting with `TXNMON_NOTIFY_` (never MONGO_PASSWORD), and
every host a notification goes to (`smtp_host`, and the host of a URL once read from the
environment) must be on the operator's allow-list (NOTIFY_ALLOWED_HOSTS); link-local and cloud
metadata addresses are refused whatever the list says. A refusal names the destination and field.
No clock and no I/O here (no DNS either: a name on the list is trusted as the operator wrote it):
times and the environment are passed in.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from txnmon.core.rules.rulebook import SEVERITY_ORDER, Severity
from txnmon.core.sentiment import SENTIMENT_DROP
from txnmon.core.stock import STOCK_DEPLETION, STOCK_OUT
from txnmon.core.versioned_files import parse_versioned
from txnmon.errors import InvalidInputFile

__all__ = ["ALERT", "DAG_FAILED", "INTERVENTION", "OPS_ALERT_KINDS", "QUALITY_FAILED", "Routes", "RoutesError",
           "intervention_event", "ops_alert_event", "outbox_entries", "parse_routes", "route"]

ALERT = "alert"
DAG_FAILED = "dag_failed"  # an Airflow task failed for good (the notifier of the DAGs)
QUALITY_FAILED = "quality_failed"  # a data-quality suite failed a critical expectation
INTERVENTION = "intervention"  # a cart-abandonment intervention (src/txnmon/core/abandonment.py)
# the events service's ops alerts (`ops_alerts`: src/txnmon/core/stock.py, src/txnmon/core/sentiment.py),
# an event kind each so a route can send stock to the warehouse and sentiment to the product team
OPS_ALERT_KINDS = (STOCK_DEPLETION, STOCK_OUT, SENTIMENT_DROP)
EVENT_KINDS = (ALERT, DAG_FAILED, QUALITY_FAILED, INTERVENTION, *OPS_ALERT_KINDS)

PENDING, SENT, DEAD = "pending", "sent", "dead"  # an outbox entry's status

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# the only variables a routes file may name: the file is editable by more people than the worker's
# environment, which also holds MONGO_PASSWORD, KAFKA_SASL_PASSWORD...
ENV_PREFIX = "TXNMON_NOTIFY_"
# NOTIFY_ALLOWED_HOSTS when unset (txnmon.settings has the same default): this machine only
DEFAULT_ALLOWED_HOSTS = ("127.0.0.1", "localhost", "::1")
# refused even when listed: link-local (where clouds serve instance credentials) and metadata names
_NEVER_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128"))
_NEVER_NAMES = ("metadata.google.internal", "metadata", "instance-data", "metadata.azure.internal")
# a label a resolver reads as a number (2852039166, 0xa9fea9fe, 0251.0376...): such a host is an IP
# address in disguise that ipaddress does not parse, so no allow-list entry can vouch for it
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_DEST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class RoutesError(InvalidInputFile):
    """The routes file is missing or invalid; the message names the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _prefixed(name: str) -> str:
    if not name.startswith(ENV_PREFIX) or len(name) == len(ENV_PREFIX):
        raise ValueError(f"must name a variable starting with {ENV_PREFIX} (the routes file may not "
                         "read the worker's other variables)")
    return name


EnvName = Annotated[str, Field(pattern=_ENV_NAME.pattern, description="an environment variable's name"),
                    AfterValidator(_prefixed)]


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
    events: list[Literal["alert", "dag_failed", "quality_failed", "intervention", "stock_depletion", "stock_out",
                         "sentiment_drop"]] = Field(
        default_factory=lambda: [ALERT], min_length=1)
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


def parse_routes(text: str, source: str = "<routes>", allowed_hosts: Sequence[str] = DEFAULT_ALLOWED_HOSTS,
                 env: Mapping[str, str] | None = None) -> Routes:
    """Validate routes YAML text; every problem is named with its path, nothing secret is echoed.

    Each destination's host is checked against `allowed_hosts` (NOTIFY_ALLOWED_HOSTS): `smtp_host`
    always, a URL read from the environment when `env` is given (the notify worker passes its own;
    the processor, which holds no destination secret, passes none)."""
    routes = parse_versioned(text, source, Routes, RoutesError, "routes")
    problems = [p for name, d in routes.destinations.items() for p in destination_refusals(name, d, allowed_hosts, env)]
    if problems:
        raise RoutesError(f"{source}: invalid routes:\n  " + "\n  ".join(problems))
    return routes


# --- where a notification may go -------------------------------------------------------------------


def _allows(entry: str, host: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
    entry = entry.strip().lower().rstrip(".")
    if address is not None:
        try:
            return address in ipaddress.ip_network(entry.strip("[]"), strict=False)
        except ValueError:
            return False
    if entry.startswith("*."):
        return host.endswith(entry[1:])  # subdomains only: "*.example.com" is not "example.com"
    return host == entry


def host_refusal(host: str | None, allowed_hosts: Sequence[str]) -> str | None:
    """Why a notification may not be sent to `host` (None: it may). `allowed_hosts` holds names,
    `*.domain` (its subdomains), IP addresses and networks (10.0.0.0/8)."""
    name = (host or "").strip().lower().rstrip(".").strip("[]")
    if not name:
        return "no host"
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        address = None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address is not None and any(address in net for net in _NEVER_NETWORKS):
        return f"host {name} is a link-local (cloud metadata) address, never allowed"
    if address is None:
        if name in _NEVER_NAMES or any(name.endswith("." + n) for n in _NEVER_NAMES):
            return f"host {name} is a cloud metadata service, never allowed"
        if all(_NUMERIC_LABEL.match(label) for label in name.split(".")):
            return f"host {name} is a numeric address in a non-standard form, never allowed"
    if not any(_allows(entry, name, address) for entry in allowed_hosts):
        return f"host {name} is not in NOTIFY_ALLOWED_HOSTS"
    return None


def url_refusal(url: str, allowed_hosts: Sequence[str]) -> str | None:
    """Why a notification may not be POSTed to `url` (None: it may). Never echoes the URL, which
    may carry a token; the host is named."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "the URL must start with http:// or https://"
    return host_refusal(host, allowed_hosts)


def destination_refusals(name: str, destination: Webhook | Slack | Email, allowed_hosts: Sequence[str],
                         env: Mapping[str, str] | None = None) -> list[str]:
    """Each reason the destination may not be sent to, as `destinations.<name>.<field>: reason`.
    A URL variable that is not set is not judged here (the delivery says it is missing)."""
    out = []
    if isinstance(destination, Email):
        why = host_refusal(destination.smtp_host, allowed_hosts)
        if why:
            out.append(f"destinations.{name}.smtp_host: {why}")
    elif env is not None and env.get(destination.url_env):
        why = url_refusal(env[destination.url_env], allowed_hosts)
        if why:
            out.append(f"destinations.{name}.url_env: the URL in {destination.url_env}: {why}")
    return out


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


INTERVENTION_FIELDS = ("trigger", "user_id", "cart", "at", "value", "products", "payment_method", "carts",
                       "failed_transaction")


def intervention_event(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A stored intervention as an event; its id is the intervention's (`<trigger>:<cart>`), so the
    same decision made again is the same outbox entry. User and cart ids are event data: the
    messages escape or JSON-encode them like an alert's fields."""
    title = f"cart abandonment: {doc['trigger']} (user {doc['user_id']})"
    return {"kind": INTERVENTION, "id": str(doc["_id"]), "title": title[:300],
            **{k: _plain(doc[k]) for k in INTERVENTION_FIELDS if doc.get(k) is not None}}


# what an ops alert's notification carries: only the figures fixed when it opened (a depletion alert
# later gains `stocked_out_at`, a drop `hours` and `lowest_recent`), so the event is the same whichever
# walk step queued it and a re-walk queues the same bytes
OPS_ALERT_FIELDS = {
    STOCK_DEPLETION: ("product", "location", "severity", "opened_at", "opened_by", "level", "rate_per_hour",
                      "minutes_to_stockout", "projected_stockout_at", "lead_time_minutes", "margin_minutes",
                      "rate_window_minutes", "reason"),
    STOCK_OUT: ("product", "location", "severity", "opened_at", "level", "depletion_alert", "reason"),
    SENTIMENT_DROP: ("product_id", "opened_at", "baseline", "recent", "reviews", "baseline_reviews", "drop",
                     "reason"),
}


def ops_alert_event(doc: Mapping[str, Any]) -> dict[str, Any]:
    """An ops alert (`ops_alerts` document) as an event, when it opens: its id is the alert's `_id`, so
    the same episode decided again is the same outbox entry. Product and location names come from the
    event streams: the messages JSON-encode or escape them like an alert's fields."""
    kind = str(doc["kind"])
    if kind not in OPS_ALERT_FIELDS:
        raise ValueError(f"not an ops alert kind: {kind!r}")
    subject = doc.get("product") if kind != SENTIMENT_DROP else doc.get("product_id")
    where = f" in {doc['location']}" if doc.get("location") is not None else ""
    title = f"{kind.replace('_', ' ')}: {subject}{where}"
    return {"kind": kind, "id": str(doc["_id"]), "title": title[:300],
            **{k: _plain(doc[k]) for k in OPS_ALERT_FIELDS[kind] if doc.get(k) is not None}}


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
