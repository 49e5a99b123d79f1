"""API keys: made once, shown once, stored as a salted hash; a presented key checked against its record.

A key reads `txn_<key id>_<secret>`: the key id finds the record without a scan, the secret (256 random
bits) is never stored. One salted SHA-256 is enough for a secret that long (no dictionary to try), and
the comparison takes the same time whatever the secret. No clock here: the caller passes `now`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Any

PREFIX = "txn"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_KEY = re.compile(rf"{PREFIX}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{20,100}})")


def valid_name(name: str) -> bool:
    return NAME.fullmatch(name) is not None


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def new_key(name: str, now: dt.datetime) -> tuple[str, dict[str, Any]]:
    """A new key for `name`: (the key, to show once; the record to store, which cannot give it back)."""
    if not valid_name(name):
        raise ValueError(f"a key name is 1-64 letters, digits, '.', '_' or '-', got {name!r}")
    key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
    record = {"_id": name, "key_id": key_id, "salt": salt, "hash": _digest(salt, secret),
              "created_at": now, "revoked_at": None}
    return f"{PREFIX}_{key_id}_{secret}", record


def key_id_of(presented: str) -> str | None:
    """The key id of a well-formed key, None for anything else (which no record can match)."""
    match = _KEY.fullmatch(presented.strip())
    return match.group(1) if match else None


def matches(presented: str, record: Mapping[str, Any] | None) -> bool:
    """True when `presented` is the live key `record` was made for."""
    match = _KEY.fullmatch(presented.strip())
    if match is None or record is None or record.get("revoked_at") is not None:
        return False
    if match.group(1) != record.get("key_id"):
        return False
    return hmac.compare_digest(_digest(str(record.get("salt")), match.group(2)), str(record.get("hash")))


def shown(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record for listing and the audit trail: never the salt or the hash."""
    return {k: record.get(k) for k in ("_id", "key_id", "created_at", "revoked_at")}
