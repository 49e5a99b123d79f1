"""API keys of `txnmon serve`: create (the key shown once, only its salted hash stored), list, revoke,
and the lookup the service makes per key id. Every create and revoke is in the audit trail."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from txnmon.adapters.mongo import MongoStore
from txnmon.api import keys
from txnmon.core.collection_names import API_KEYS
from txnmon.errors import UsageError
from txnmon.jobs import audit


def create(store: MongoStore, name: str, *, by: str, now: dt.datetime | None = None,
           scopes: Iterable[str] = keys.DEFAULT_SCOPES) -> str:
    """A new key named `name` with `scopes` (ingest, read); returns the key (it cannot be read back). A live
    key of that name, or an unknown scope: UsageError."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        key, record = keys.new_key(name, now, scopes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    old = store.find_one(API_KEYS, {"_id": name})
    if old is not None and old.get("revoked_at") is None:
        raise UsageError(f"a live key named {name!r} exists: revoke it first (`txnmon keys revoke {name}`)")
    if old is None:
        if store.insert_missing(API_KEYS, [record]).inserted != 1:
            raise UsageError(f"a key named {name!r} was created meanwhile")
    else:
        store.replace_document(API_KEYS, record)  # a revoked name made live again, with a new secret
    audit.record(store, "apikey.create", by=by, target=f"apikey:{name}", before=keys.shown(old) if old else None,
                 after=keys.shown(record), now=now)
    return key


def revoke(store: MongoStore, name: str, *, by: str, now: dt.datetime | None = None) -> bool:
    """Revoke the live key `name` (False: none). The service stops taking it within API_KEY_CACHE_SECONDS."""
    now = now or dt.datetime.now(dt.UTC)
    before = store.find_one(API_KEYS, {"_id": name})
    if before is None or store.set_fields(API_KEYS, [name], {"revoked_at": now}, only_if={"revoked_at": None}) == 0:
        return False
    audit.record(store, "apikey.revoke", by=by, target=f"apikey:{name}", before=keys.shown(before),
                 after={**keys.shown(before), "revoked_at": now}, now=now)
    return True


def listed(store: MongoStore) -> list[dict[str, Any]]:
    """Every key, live and revoked, without its salt or hash."""
    return [keys.shown(r) for r in store.find(API_KEYS, {}, sort=[("_id", 1)], limit=10_000)]


def find_by_key_id(store: MongoStore, key_id: str) -> dict[str, Any] | None:
    return store.find_one(API_KEYS, {"key_id": key_id})
