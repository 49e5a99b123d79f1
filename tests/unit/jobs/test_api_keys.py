import argparse
import datetime as dt
from types import SimpleNamespace

import pytest

from txnmon.api import keys
from txnmon.core.collection_names import API_KEYS, AUDIT_LOG
from txnmon.errors import UsageError
from txnmon.jobs import api_keys

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class Store:
    """The `MongoStore` calls the key job makes, over dicts (equality queries only)."""

    def __init__(self):
        self.data: dict[str, dict] = {API_KEYS: {}, AUDIT_LOG: {}}

    def _match(self, doc, query):
        return all(doc.get(k) == v for k, v in query.items())

    def find_one(self, collection, query):
        return next((dict(d) for d in self.data[collection].values() if self._match(d, query)), None)

    def find(self, collection, query, sort=None, limit=0):
        return [dict(d) for d in self.data[collection].values() if self._match(d, query)]

    def insert_missing(self, collection, docs):
        new = [d for d in docs if d["_id"] not in self.data[collection]]
        for d in new:
            self.data[collection][d["_id"]] = dict(d)
        return SimpleNamespace(inserted=len(new))

    def replace_document(self, collection, doc):
        self.data[collection][doc["_id"]] = dict(doc)

    def set_fields(self, collection, ids, fields, only_if=None):
        hit = [i for i in ids if i in self.data[collection] and self._match(self.data[collection][i], only_if or {})]
        for i in hit:
            self.data[collection][i].update(fields)
        return len(hit)


def test_create_list_revoke_each_audited_and_the_key_never_stored():
    store = Store()
    key = api_keys.create(store, "shop", by="ana", now=NOW)
    assert key not in repr(store.data)
    record = api_keys.find_by_key_id(store, keys.key_id_of(key))
    assert keys.matches(key, record)
    with pytest.raises(UsageError):
        api_keys.create(store, "shop", by="ana", now=NOW)
    assert [k["_id"] for k in api_keys.listed(store)] == ["shop"]
    assert "hash" not in api_keys.listed(store)[0]
    assert api_keys.revoke(store, "shop", by="bob", now=NOW)
    assert not api_keys.revoke(store, "shop", by="bob", now=NOW)
    assert not keys.matches(key, api_keys.find_by_key_id(store, keys.key_id_of(key)))
    again = api_keys.create(store, "shop", by="ana", now=NOW)  # a revoked name made live with a new secret
    assert keys.matches(again, api_keys.find_by_key_id(store, keys.key_id_of(again)))
    actions = [(e["action"], e["who"], e["target"]) for e in store.data[AUDIT_LOG].values()]
    assert actions == [("apikey.create", "ana", "apikey:shop"), ("apikey.revoke", "bob", "apikey:shop"),
                       ("apikey.create", "ana", "apikey:shop")]
    assert all("hash" not in str(e["after"]) for e in store.data[AUDIT_LOG].values())


def test_a_bad_name_is_a_usage_error():
    with pytest.raises(UsageError):
        api_keys.create(Store(), "no spaces", by="ana", now=NOW)


def test_scopes_are_stored_listed_and_audited_and_an_unknown_scope_is_a_usage_error():
    store = Store()
    api_keys.create(store, "desk", by="ana", now=NOW, scopes=["read"])
    api_keys.create(store, "shop", by="ana", now=NOW)
    assert {k["_id"]: k["scopes"] for k in api_keys.listed(store)} == {"desk": ["read"], "shop": ["ingest"]}
    [created, _] = store.data[AUDIT_LOG].values()
    assert created["after"]["scopes"] == ["read"]
    with pytest.raises(UsageError, match="scope"):
        api_keys.create(store, "ops", by="ana", now=NOW, scopes=["admin"])


def test_keys_create_takes_repeated_or_comma_scopes_and_list_shows_them(monkeypatch, capsys):
    from txnmon.cli import api as cli_api

    store = Store()
    monkeypatch.setattr("txnmon.adapters.mongo.MongoStore", lambda settings: store)
    monkeypatch.setattr(Store, "close", lambda self: None, raising=False)
    parser = argparse.ArgumentParser()
    cli_api.register(parser.add_subparsers())
    for argv in (["keys", "create", "both", "--scope", "ingest", "--scope", "read"],
                 ["keys", "create", "also", "--scope", "read,ingest"], ["keys", "create", "shop"]):
        args = parser.parse_args(argv)
        assert args.func(None, args) == 0
    assert {k["_id"]: k["scopes"] for k in api_keys.listed(store)} == {
        "also": ["ingest", "read"], "both": ["ingest", "read"], "shop": ["ingest"]}
    capsys.readouterr()
    args = parser.parse_args(["keys", "list"])
    assert args.func(None, args) == 0
    assert "ingest,read" in capsys.readouterr().out
