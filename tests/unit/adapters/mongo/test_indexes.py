"""The schema: every index by name on its collection, and the $merge targets created once (no server)."""

from __future__ import annotations

import pytest
from pymongo.errors import CollectionInvalid, OperationFailure

from txnmon.adapters.mongo import indexes
from txnmon.core.collection_names import CASES, LIST_ENTRIES, NOTIFICATIONS, OPS_ALERTS, RULE_QUALITY, TRANSACTIONS
from txnmon.core.rollups import ROLLUP_NAMES
from txnmon.errors import StoreRefused

from .fakes import FakeDb


class SchemaDb(FakeDb):
    def __init__(self, existing=(), create_error=None):
        super().__init__()
        self.existing, self.create_error, self.created = list(existing), create_error, []

    def list_collection_names(self):
        return self.existing

    def create_collection(self, name):
        if self.create_error is not None:
            raise self.create_error
        self.created.append(name)


def index_names(db, name):
    return [kwargs["name"] for method, _, kwargs in db[name].calls if method == "create_index"]


def test_the_indexes_the_queries_rely_on():
    db = SchemaDb()
    indexes.ensure_indexes(db)
    assert index_names(db, TRANSACTIONS) == ["user_recent", "event_time", "processed_time", "labelled_behaviour",
                                             "labelled_incident"]
    assert index_names(db, CASES) == ["user_window", "status_severity_opened", "alert_ids", "pending_close"]
    assert index_names(db, LIST_ENTRIES) == ["list_key"]
    assert index_names(db, NOTIFICATIONS) == ["status_due"]
    assert index_names(db, OPS_ALERTS) == ["status_opened", "kind_opened",  # the dashboard's per-kind lists
                                          "kind_status_opened"]  # ... of open alerts only
    assert db.created == [*ROLLUP_NAMES, RULE_QUALITY]


def test_merge_targets_that_exist_or_appear_meanwhile_are_fine():
    db = SchemaDb(existing=[*ROLLUP_NAMES, RULE_QUALITY])
    indexes.ensure_indexes(db)
    assert db.created == []
    indexes.ensure_indexes(SchemaDb(create_error=CollectionInvalid("exists")))
    indexes.ensure_indexes(SchemaDb(create_error=OperationFailure("exists", code=48)))
    with pytest.raises(OperationFailure):
        indexes.ensure_indexes(SchemaDb(create_error=OperationFailure("not authorized", code=13)))


def test_the_store_translates_a_schema_refusal(store, monkeypatch):
    monkeypatch.setattr(type(store), "db", property(lambda self: SchemaDb(
        create_error=OperationFailure("not authorized", code=13))))
    with pytest.raises(StoreRefused, match="not authorized"):
        store.ensure_indexes()
