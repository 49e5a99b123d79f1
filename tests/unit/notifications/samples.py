"""A routes file and an alert shared by the notification tests."""

from __future__ import annotations

import datetime as dt

from txnmon.core.rules.engine import Hit, alert_document

T0 = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)

ROUTES = """
version: "7"
destinations:
  hook: {type: webhook, url_env: TXNMON_NOTIFY_HOOK_URL, secret_env: TXNMON_NOTIFY_HOOK_SECRET}
  chat: {type: slack, url_env: TXNMON_NOTIFY_CHAT_URL, rate_per_second: 1}
  mail: {type: email, smtp_host: 127.0.0.1, smtp_port: 2525, sender: a@example.com, to: [b@example.com]}
  muted: {type: webhook, enabled: false, url_env: TXNMON_NOTIFY_OFF_URL, secret_env: TXNMON_NOTIFY_OFF_SECRET}
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
