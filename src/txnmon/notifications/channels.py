"""The channels a notification leaves by, behind one `Channel` interface: a signed webhook, a chat
(Slack-compatible) webhook, a mail over SMTP. The only HTTP and SMTP client code in txnmon.

Secrets (URLs that embed tokens, HMAC keys, SMTP logins) are read from the worker's environment
under the variable names the routes file gives, at send time, never from the file or the record.
Each send tells the caller how it went in txnmon's terms:
`DeliveryFailed` (retryable: no answer, a 5xx, 408/409/425/429, a refused connection, a temporary
SMTP error), `DeliveryRefused` (for good: any other 4xx, a permanent SMTP refusal). Nothing else in
txnmon imports an HTTP or SMTP client.
"""

from __future__ import annotations

import datetime as dt
import http.client
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol

from txnmon.errors import DeliveryFailed, DeliveryRefused
from txnmon.notifications import messages
from txnmon.notifications.policy import is_permanent, retry_after_seconds


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # a signed POST is never re-sent somewhere else: a redirect is the receiver's misconfiguration
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
    """POST `body`; return the 2xx status. The URL is never put in an error message (it may hold a token)."""
    if not url.startswith(("http://", "https://")):
        raise DeliveryRefused("the destination URL must start with http:// or https://")
    request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
    try:
        with _opener.open(request, timeout=timeout_s) as response:
            response.read(64 * 1024)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
        answer = _snippet(exc)
        if is_permanent(status) or 300 <= status < 400:
            raise DeliveryRefused(f"HTTP {status}: {answer}") from None
        wait = retry_after_seconds(exc.headers.get("Retry-After") if exc.headers else None,
                                   now=dt.datetime.now(dt.UTC))
        raise DeliveryFailed(f"HTTP {status}: {answer}", retry_after=wait or 0.0) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryFailed(f"no answer: {type(reason).__name__}: {reason}"[:300]) from None
    except http.client.InvalidURL:
        # a bad port or host in the URL variable: no retry fixes it; the message leaves the URL out
        raise DeliveryRefused("the destination URL is not valid (check its host and port)") from None
    except http.client.HTTPException as exc:
        # an answer that is not HTTP (BadStatusLine, a truncated response): the receiver may recover
        raise DeliveryFailed(f"not an HTTP answer: {type(exc).__name__}"[:300]) from None


def _snippet(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read(300).decode("utf-8", "replace")
    except OSError:
        text = ""
    return " ".join(text.split())[:200] or (exc.reason or "")


def send_mail(*, host: str, port: int, sender: str, to: Sequence[str], subject: str, text: str,
              message_id_key: str, username: str | None = None, password: str | None = None,
              starttls: bool = False, use_ssl: bool = False, timeout_s: float = 10.0) -> None:
    """One plain-text mail. `message_id_key` (the notification id) goes into the Message-ID and an
    X-Txnmon-Notification header, so a mail sent twice after a crash can be recognised."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(idstring=message_id_key.replace("|", ".").replace(":", ".")[:60],
                                       domain=sender.split("@", 1)[1])
    message["X-Txnmon-Notification"] = message_id_key
    message.set_content(text)
    try:
        client: smtplib.SMTP
        if use_ssl:
            client = smtplib.SMTP_SSL(host, port, timeout=timeout_s, context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, port, timeout=timeout_s)
        with client:
            if starttls:
                client.starttls(context=ssl.create_default_context())
            if username is not None:
                client.login(username, password or "")
            refused = client.send_message(message)
        if refused:
            raise DeliveryRefused(f"SMTP refused recipient(s): {', '.join(sorted(refused))}")
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryRefused(f"SMTP login refused ({exc.smtp_code})") from None
    except smtplib.SMTPResponseException as exc:
        message_text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) \
            else str(exc.smtp_error)
        if 500 <= exc.smtp_code < 600:
            raise DeliveryRefused(f"SMTP {exc.smtp_code}: {message_text[:200]}") from None
        raise DeliveryFailed(f"SMTP {exc.smtp_code}: {message_text[:200]}") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryRefused(f"SMTP refused every recipient: {', '.join(sorted(exc.recipients))}") from None
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP: {type(exc).__name__}: {exc}"[:300]) from None


class MissingSecret(DeliveryFailed):
    """A variable the routes file names is not set in the worker's environment (retried: a restart
    with the variable set fixes it; after NOTIFY_MAX_ATTEMPTS the entry is dead and can be re-sent)."""


def _secret(env: Mapping[str, str], name: str | None, what: str, destination: str) -> str:
    value = env.get(name or "", "")
    if not value:
        raise MissingSecret(f"destination {destination}: {what} variable {name} is not set in the worker's "
                            "environment")
    return value


class Channel(Protocol):
    """Sends one outbox entry to a destination of its type; returns a short description of the answer,
    raises DeliveryFailed (retry) or DeliveryRefused (dead letter)."""

    def send(self, entry: Mapping[str, Any], destination: Any, env: Mapping[str, str], now: dt.datetime) -> str: ...


class WebhookChannel:
    """The generic webhook: a JSON body signed with HMAC-SHA256 (docs/notifications.md)."""

    def send(self, entry: Mapping[str, Any], destination: Any, env: Mapping[str, str], now: dt.datetime) -> str:
        name = entry["destination"]
        url = _secret(env, destination.url_env, "URL", name)
        key = _secret(env, destination.secret_env, "secret", name).encode("utf-8")
        body = messages.webhook_body(entry)
        headers = messages.webhook_headers(entry, body, key, int(now.timestamp()))
        return f"HTTP {post(url, body, headers, destination.timeout_seconds)}"


class SlackChannel:
    """A Slack-compatible incoming webhook (the URL is the secret)."""

    def send(self, entry: Mapping[str, Any], destination: Any, env: Mapping[str, str], now: dt.datetime) -> str:
        url = _secret(env, destination.url_env, "URL", entry["destination"])
        body = messages.slack_body(entry)
        headers = {"Content-Type": "application/json", messages.IDEMPOTENCY_HEADER: str(entry["_id"])}
        return f"HTTP {post(url, body, headers, destination.timeout_seconds)}"


class EmailChannel:
    """A plain-text mail over SMTP (optionally with login, STARTTLS or SSL)."""

    def send(self, entry: Mapping[str, Any], destination: Any, env: Mapping[str, str], now: dt.datetime) -> str:
        name = entry["destination"]
        username = password = None
        if destination.username_env:
            username = _secret(env, destination.username_env, "SMTP username", name)
            password = _secret(env, destination.password_env, "SMTP password", name)
        subject, text = messages.email_message(entry)
        send_mail(host=destination.smtp_host, port=destination.smtp_port, sender=destination.sender,
                  to=destination.to, subject=subject, text=text, message_id_key=str(entry["_id"]),
                  username=username, password=password, starttls=destination.starttls,
                  use_ssl=destination.ssl, timeout_s=destination.timeout_seconds)
        return "accepted by SMTP"


CHANNELS: dict[str, Channel] = {"webhook": WebhookChannel(), "slack": SlackChannel(), "email": EmailChannel()}


def deliver(entry: Mapping[str, Any], destination: Any, env: Mapping[str, str], now: dt.datetime) -> str:
    """Send one outbox entry through the channel of its destination's type."""
    channel = CHANNELS.get(destination.type)
    if channel is None:
        raise DeliveryRefused(f"destination {entry['destination']}: unknown type {destination.type!r}")
    try:
        return channel.send(entry, destination, env, now)
    except (DeliveryFailed, DeliveryRefused):
        raise
    except Exception as exc:
        raise DeliveryFailed(f"unexpected {type(exc).__name__} while sending: {str(exc)[:200]}") from exc
