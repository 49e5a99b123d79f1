"""ListsRepository: list entries are replaced, stamped removed, and loaded live, as sent to MongoDB (no server)."""

from __future__ import annotations

from pymongo import ReturnDocument

from txnmon.adapters.mongo import ListsRepository, MongoStore
from txnmon.core.collection_names import LIST_ENTRIES


def test_put_replaces_by_id_and_returns_the_old_entry(store, fake_db):
    fake_db[LIST_ENTRIES].answers["find_one_and_replace"] = {"_id": "blocked_users:u1", "reason": "old"}
    before = MongoStore.written[LIST_ENTRIES]
    entry = {"_id": "blocked_users:u1", "reason": "new"}
    assert ListsRepository(store).put_entry(entry) == {"_id": "blocked_users:u1", "reason": "old"}
    [(method, args, kwargs)] = fake_db[LIST_ENTRIES].calls
    assert (method, args) == ("find_one_and_replace", ({"_id": "blocked_users:u1"}, entry))
    assert kwargs == {"upsert": True, "return_document": ReturnDocument.BEFORE}
    assert MongoStore.written[LIST_ENTRIES] == before + 1


def test_remove_stamps_only_an_entry_not_removed_yet(store, fake_db):
    fake_db[LIST_ENTRIES].answers["find_one_and_update"] = None
    assert ListsRepository(store).remove_entry("blocked_users:u1", {"removed_at": 1}) is None
    [(_, args, kwargs)] = fake_db[LIST_ENTRIES].calls
    assert args == ({"_id": "blocked_users:u1", "removed_at": None}, {"$set": {"removed_at": 1}})
    assert kwargs == {"return_document": ReturnDocument.BEFORE}


def test_live_entries_are_the_entries_not_removed_expired_or_not(store, fake_db):
    # an expired entry still covers the events before its expiry (a lagging processor, a backfill):
    # the query must not filter by the wall clock
    fake_db[LIST_ENTRIES].answers["find"] = iter([{"_id": "e"}])
    assert ListsRepository(store).live_entries() == [{"_id": "e"}]
    [(_, args, _)] = fake_db[LIST_ENTRIES].calls
    assert args == ({"removed_at": None},)


def test_each_change_moves_the_mark_after_the_entry_and_a_refused_mark_loses_nothing(store, fake_db, caplog):
    from pymongo.errors import OperationFailure

    from txnmon.core.collection_names import LIST_CHANGES

    repo = ListsRepository(store)
    repo.put_entry({"_id": "blocked_users:u1"})
    fake_db[LIST_ENTRIES].answers["find_one_and_update"] = {"_id": "blocked_users:u1"}
    repo.remove_entry("blocked_users:u1", {"removed_at": 1})
    fake_db[LIST_ENTRIES].answers["find_one_and_update"] = None
    repo.remove_entry("blocked_users:u9", {"removed_at": 1})  # nothing removed: the mark stays
    assert [(m, a) for m, a, _ in fake_db[LIST_CHANGES].calls] == \
        [("update_one", ({"_id": "lists"}, {"$inc": {"seq": 1}}))] * 2
    # a role made before list_changes existed: the entry is written and returned (the caller audits it)
    fake_db[LIST_CHANGES].answers["update_one"] = OperationFailure("not authorized on txnmon", code=13)
    fake_db[LIST_ENTRIES].answers["find_one_and_replace"] = None
    assert repo.put_entry({"_id": "blocked_users:u2"}) is None
    assert "not signalled" in caplog.text
    fake_db[LIST_CHANGES].answers["find_one"] = {"_id": "lists", "seq": 7}
    assert repo.change_mark() == 7
    fake_db[LIST_CHANGES].answers["find_one"] = None
    assert repo.change_mark() == 0
