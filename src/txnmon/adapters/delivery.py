"""Sending notifications over the network: an HTTP POST (webhooks, Slack) and a mail over SMTP.

Each call sends one message and tells the caller how it went in txnmon's terms:
`DeliveryFailed` (retryable: no answer, a 5xx, 408/409/425/429, a refused connection, a temporary
SMTP error), `DeliveryRefused` (for good: any other 4xx, a permanent SMTP refusal). Nothing else in
txnmon imports an HTTP or SMTP client.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from txnmon.core.notify import is_permanent, retry_after_seconds
from txnmon.errors import DeliveryFailed, DeliveryRefused


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
