"""OutboxRepository: the notify workers' lease protocol and the shared rate limit, as sent to MongoDB (no server)."""

from __future__ import annotations

from types import SimpleNamespace

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from txnmon.adapters.mongo import OutboxRepository
from txnmon.core.collection_names import NOTIFICATIONS, NOTIFY_RATES


def test_claim_leases_the_entry_due_first(store, fake_db):
    outbox = OutboxRepository(store)
    outbox.claim("w1", 10, 40)
    outbox.claim("w1", 10, 40, ["slow-hook"])
    plain, skipping = fake_db[NOTIFICATIONS].calls
    due = {"status": "pending", "next_attempt_at": {"$lte": 10},
           "$or": [{"lease_until": None}, {"lease_until": {"$lt": 10}}]}
    assert plain[1] == (due, {"$set": {"lease_owner": "w1", "lease_until": 40}})
    assert skipping[1][0] == {**due, "destination": {"$nin": ["slow-hook"]}}
    assert plain[2] == {"sort": [("next_attempt_at", ASCENDING)], "return_document": ReturnDocument.AFTER}


def test_release_and_settle_only_while_holding_the_lease(store, fake_db):
    fake_db[NOTIFICATIONS].answers["update_one"] = SimpleNamespace(modified_count=0)
    outbox = OutboxRepository(store)
    outbox.release("n1", "w1")
    assert outbox.settle("n1", "w1", {"status": "sent"}, {"outcome": "200"}) is False
    released, settled = fake_db[NOTIFICATIONS].calls
    assert released[1] == ({"_id": "n1", "lease_owner": "w1"}, {"$set": {"lease_owner": None, "lease_until": None}})
    assert settled[1] == ({"_id": "n1", "lease_owner": "w1"},
                          {"$set": {"status": "sent", "lease_owner": None, "lease_until": None},
                           "$inc": {"attempts": 1}, "$push": {"attempt_log": {"outcome": "200"}}})


def test_requeue_dead_sets_matching_dead_entries_pending(store, fake_db):
    fake_db[NOTIFICATIONS].answers["find"] = [{"_id": "n1"}, {"_id": "n2"}]
    assert OutboxRepository(store).requeue_dead({"destination": "hook"}, 9, "ana") == ["n1", "n2"]
    found, updated = fake_db[NOTIFICATIONS].calls
    assert found[1] == ({"destination": "hook", "status": "dead"}, {"_id": 1})
    assert updated[1] == ({"_id": {"$in": ["n1", "n2"]}, "status": "dead"},
                          {"$set": {"status": "pending", "attempts": 0, "next_attempt_at": 9, "lease_owner": None,
                                    "lease_until": None, "resent_at": 9, "resent_by": "ana"}})


def test_reserve_send_is_a_compare_and_set_on_tat(store, fake_db):
    rates = fake_db[NOTIFY_RATES]
    states = iter([None, {"_id": "hook", "tat": 100.0}, {"_id": "hook", "tat": 100.0}])
    rates.answers["find_one"] = lambda query: next(states)
    rates.answers["insert_one"] = DuplicateKeyError("E11000", code=11000)  # another worker created it first
    changed = iter([0, 1])  # the first compare-and-set finds the tat changed meanwhile
    rates.answers["update_one"] = lambda query, update: SimpleNamespace(modified_count=next(changed))
    assert OutboxRepository(store).reserve_send("hook", 100.0, lambda tat, now: ((tat or now) + 1.0, 0.0)) == 0.0
    assert [m for m, _, _ in rates.calls] == ["find_one", "insert_one", "find_one", "update_one", "find_one",
                                              "update_one"]
    assert rates.calls[3][1] == ({"_id": "hook", "tat": 100.0}, {"$set": {"tat": 101.0}})


def test_reserve_send_says_how_long_to_wait(store, fake_db):
    rates = fake_db[NOTIFY_RATES]
    rates.answers["find_one"] = {"_id": "hook", "tat": 200.0}
    assert OutboxRepository(store).reserve_send("hook", 100.0, lambda tat, now: (None, tat - now)) == 100.0
    rates.answers["update_one"] = SimpleNamespace(modified_count=0)  # contended all along
    assert OutboxRepository(store).reserve_send("hook", 100.0, lambda tat, now: (tat + 1, 0.0), attempts=3) == 0.001
    assert [m for m, _, _ in rates.calls].count("update_one") == 3
