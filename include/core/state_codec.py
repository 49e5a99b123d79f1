"""A user's detector state as bytes for the state changelog topic, and back.

JSON with ISO-8601 times to the microsecond: a restored history is exactly the one that was
written (BSON dates would cut microseconds, and a redelivered event would then sort after its own
stored copy). Compact on purpose: one short array per event.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

FORMAT = 1


def _time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def encode_user_state(state: Mapping[str, Any]) -> bytes:
    """`Detector.export_state` document of one user -> changelog value."""
    doc = {
        "v": FORMAT,
        "events": [[_time(e[0]), *e[1:]] for e in state.get("events", [])],
        "raised": {rule: [_time(t), alert_id] for rule, (t, alert_id) in state.get("raised", {}).items()},
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_user_state(raw: bytes) -> dict[str, Any]:
    """Changelog value -> the document `Detector.import_state` reads."""
    doc = json.loads(raw)
    if doc.get("v") != FORMAT:
        raise ValueError(f"unknown state format {doc.get('v')!r}")
    return {
        "events": [[dt.datetime.fromisoformat(e[0]), *e[1:]] for e in doc["events"]],
        "raised": {rule: (dt.datetime.fromisoformat(t), alert_id) for rule, (t, alert_id) in doc["raised"].items()},
    }
