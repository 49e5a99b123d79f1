"""LeasesRepository: a lease is taken by one conditional upsert; a collision means someone else holds it."""

from __future__ import annotations

import pytest
from pymongo.errors import AutoReconnect, DuplicateKeyError

from txnmon.adapters.mongo import LeasesRepository
from txnmon.core.collection_names import LEASES
from txnmon.errors import StoreUnavailable


def test_acquire_takes_a_free_expired_or_own_lease(store, fake_db):
    assert LeasesRepository(store).acquire("rollups", "me", 10, 20) is True
    [(method, args, kwargs)] = fake_db[LEASES].calls
    assert method == "find_one_and_update"
    assert args == ({"_id": "rollups", "$or": [{"owner": None}, {"owner": "me"}, {"until": {"$lt": 10}}]},
                    {"$set": {"owner": "me", "until": 20, "renewed_at": 10}})
    assert kwargs == {"upsert": True}


def test_a_lease_held_by_another_owner_is_not_taken(store, fake_db):
    fake_db[LEASES].answers["find_one_and_update"] = DuplicateKeyError("E11000", code=11000)
    assert LeasesRepository(store).acquire("rollups", "me", 10, 20) is False
    fake_db[LEASES].answers["find_one_and_update"] = AutoReconnect("gone")
    with pytest.raises(StoreUnavailable):
        LeasesRepository(store).acquire("rollups", "me", 10, 20)


def test_release_frees_only_the_owners_lease(store, fake_db):
    LeasesRepository(store).release("rollups", "me")
    [(method, args, _)] = fake_db[LEASES].calls
    assert method == "update_one"
    assert args == ({"_id": "rollups", "owner": "me"}, {"$set": {"owner": None, "until": None}})
