"""MongoStore.insert_missing: outages retry, duplicates count as stored, refusals name their documents (no server)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pymongo.errors import AutoReconnect, BulkWriteError

from txnmon.adapters.mongo import MongoStore
from txnmon.errors import RetryableError, StoreRefused, StoreUnavailable
from txnmon.settings import load_settings


class FakeCollection:
    def __init__(self, outcome):
        self.outcome = outcome
        self.inserted: list[dict] = []

    def insert_many(self, docs, ordered):
        assert ordered is False
        result = self.outcome(docs)
        if isinstance(result, Exception):
            raise result
        self.inserted.extend(docs)
        return SimpleNamespace(inserted_ids=[d["_id"] for d in docs])


def store_over(collection: FakeCollection, monkeypatch) -> MongoStore:
    store = MongoStore(load_settings(metrics_port=0))
    monkeypatch.setattr(MongoStore, "db", property(lambda self: {"transactions": collection}))
    return store


def docs(n: int) -> list[dict]:
    return [{"_id": f"T{i}", "amount": float(i)} for i in range(n)]


def test_a_write_concern_error_is_an_outage_not_a_success(monkeypatch):
    error = BulkWriteError({"writeErrors": [], "nInserted": 3,
                            "writeConcernErrors": [{"code": 64, "errmsg": "waiting for replication"}]})
    store = store_over(FakeCollection(lambda d: error), monkeypatch)
    with pytest.raises(StoreUnavailable, match="write concern") as caught:
        store.insert_missing("transactions", docs(3))
    assert isinstance(caught.value, RetryableError)


def test_duplicates_are_already_stored_and_named(monkeypatch):
    error = BulkWriteError({"writeErrors": [{"index": 1, "code": 11000, "errmsg": "dup"}], "writeConcernErrors": []})
    store = store_over(FakeCollection(lambda d: error), monkeypatch)
    result = store.insert_missing("transactions", [*docs(3), docs(1)[0]])
    assert (result.inserted, result.existing) == (2, 2)
    assert sorted(result.duplicate_ids) == ["T0", "T1"]


def test_a_refused_document_is_named_by_its_index_in_the_callers_batch(monkeypatch):
    error = BulkWriteError({"writeErrors": [{"index": 1, "code": 11000, "errmsg": "dup"},
                                            {"index": 2, "code": 17419, "errmsg": "too big"}],
                            "writeConcernErrors": []})
    store = store_over(FakeCollection(lambda d: error), monkeypatch)
    batch = [docs(1)[0], *docs(3)]  # T0 twice: the insert sees [T0, T1, T2]
    with pytest.raises(StoreRefused) as caught:
        store.insert_missing("transactions", batch)
    assert caught.value.refused == {3: "too big"}  # T2, the caller's index 3
    assert sorted(caught.value.duplicate_ids) == ["T0", "T1"]


def test_a_document_the_driver_cannot_encode_is_refused_and_the_rest_inserted(monkeypatch):
    collection = FakeCollection(lambda d: OverflowError("MongoDB can only handle up to 8-byte ints")
                                if any(x.get("big") for x in d) else None)
    store = store_over(collection, monkeypatch)
    batch = docs(3)
    batch[1]["big"] = 2**70
    with pytest.raises(StoreRefused) as caught:
        store.insert_missing("transactions", batch)
    assert list(caught.value.refused) == [1] and "not storable" in caught.value.refused[1]
    assert [d["_id"] for d in collection.inserted] == ["T0", "T2"]


def test_a_lost_connection_is_an_outage(monkeypatch):
    store = store_over(FakeCollection(lambda d: AutoReconnect("connection reset")), monkeypatch)
    with pytest.raises(StoreUnavailable):
        store.insert_missing("transactions", docs(2))


def test_an_internal_server_error_is_retried_never_dead_lettered(monkeypatch):
    error = BulkWriteError({"writeErrors": [{"index": 0, "code": 8, "errmsg": "Unknown error: null"}],
                            "writeConcernErrors": []})
    store = store_over(FakeCollection(lambda d: error), monkeypatch)
    with pytest.raises(StoreUnavailable):
        store.insert_missing("transactions", docs(2))


def test_a_document_over_16_mib_is_refused_before_sending_and_the_rest_inserted(monkeypatch):
    """Issue #27 item 1: a MongoDB-wire server closes the connection on an oversized document, which
    looked like an outage retried for ever; nothing that large may be sent."""
    from txnmon.adapters.mongo.store import MAX_DOCUMENT_BYTES

    collection = FakeCollection(lambda d: AutoReconnect("connection closed")
                                if any(len(x.get("blob", "")) > MAX_DOCUMENT_BYTES for x in d) else None)
    store = store_over(collection, monkeypatch)
    batch = docs(3)
    batch[2]["blob"] = "x" * (MAX_DOCUMENT_BYTES + 1)
    with pytest.raises(StoreRefused) as caught:
        store.insert_missing("transactions", batch)
    assert list(caught.value.refused) == [2] and "16777216" in caught.value.refused[2]
    assert [d["_id"] for d in collection.inserted] == ["T0", "T1"]


def test_an_oversized_and_a_server_refused_document_are_both_named_by_their_index_in_the_batch(monkeypatch):
    """The oversized one is held back and the rest sent; a refusal of the rest must still name the
    caller's index, or a stored document is dead-lettered and the refused one counted as stored."""
    from txnmon.adapters.mongo.store import MAX_DOCUMENT_BYTES

    def refuse_srv_bad(sent):
        errors = [{"index": i, "code": 121, "errmsg": "Document failed validation"}
                  for i, d in enumerate(sent) if d["_id"] == "srv-bad"]
        return BulkWriteError({"writeErrors": errors, "nInserted": len(sent) - len(errors)}) if errors else None

    store = store_over(FakeCollection(refuse_srv_bad), monkeypatch)
    batch = [{"_id": "a"}, {"_id": "big", "blob": "x" * (MAX_DOCUMENT_BYTES + 1)}, {"_id": "b"}, {"_id": "srv-bad"}]
    with pytest.raises(StoreRefused) as caught:
        store.insert_missing("transactions", batch)
    assert sorted(caught.value.refused) == [1, 3]
    assert "16777216" in caught.value.refused[1] and "validation" in caught.value.refused[3]
