"""API keys: made once, shown once, stored as a salted hash; a presented key checked against its record.

A key reads `txn_<key id>_<secret>`: the key id finds the record without a scan, the secret (256 random
bits) is never stored. One salted SHA-256 is enough for a secret that long (no dictionary to try), and
the comparison takes the same time whatever the secret. No clock here: the caller passes `now`.

A key has scopes: `ingest` (POST /v1/transactions and /v1/decisions: a shop's checkout) and `read` (GET
/v1/decisions|alerts|cases/{id}: the back office). A record stored before scopes existed has none and
means `ingest` only, what it was made for.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

PREFIX = "txn"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
INGEST, READ = "ingest", "read"
SCOPES = (INGEST, READ)
DEFAULT_SCOPES = (INGEST,)
_KEY = re.compile(rf"{PREFIX}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{20,100}})")


def valid_name(name: str) -> bool:
    return NAME.fullmatch(name) is not None


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def checked_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes, each once and in a fixed order; "ingest,read" counts as two. Raises ValueError naming an
    unknown one, or for none at all."""
    wanted = {part.strip().lower() for scope in scopes for part in str(scope).split(",") if part.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope {unknown[0]!r}: a key's scopes are {', '.join(SCOPES)}")
    if not wanted:
        raise ValueError(f"a key needs at least one scope ({', '.join(SCOPES)})")
    return [s for s in SCOPES if s in wanted]


def scopes_of(record: Mapping[str, Any] | None) -> frozenset[str]:
    """What a key record may do; a record without `scopes` (made before them) is ingest only."""
    if record is None:
        return frozenset()
    stored = record.get("scopes")
    return frozenset(DEFAULT_SCOPES if stored is None else (str(s) for s in stored))


def new_key(name: str, now: dt.datetime, scopes: Iterable[str] = DEFAULT_SCOPES) -> tuple[str, dict[str, Any]]:
    """A new key for `name`: (the key, to show once; the record to store, which cannot give it back)."""
    if not valid_name(name):
        raise ValueError(f"a key name is 1-64 letters, digits, '.', '_' or '-', got {name!r}")
    granted = checked_scopes(scopes)
    key_id, secret, salt = secrets.token_hex(8), secrets.token_urlsafe(32), secrets.token_hex(16)
    record = {"_id": name, "key_id": key_id, "salt": salt, "hash": _digest(salt, secret),
              "scopes": granted, "created_at": now, "revoked_at": None}
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
    shown = {k: record.get(k) for k in ("_id", "key_id", "created_at", "revoked_at")}
    return {**shown, "scopes": [s for s in SCOPES if s in scopes_of(record)]}
