"""RedriveRepository: a re-drive run's claims on rejected records, as sent to MongoDB (no server)."""

from __future__ import annotations

from types import SimpleNamespace

from txnmon.adapters.mongo import RedriveRepository
from txnmon.core.collection_names import REJECTED


def test_claim_takes_records_neither_redriven_nor_claimed_by_a_live_run(store, fake_db):
    fake_db[REJECTED].answers["update_many"] = SimpleNamespace(modified_count=2)
    redrive = RedriveRepository(store)
    assert redrive.claim([], "tok", 5, stale_before=1) == 0 and fake_db[REJECTED].calls == []
    assert redrive.claim(["r1", "r2"], "tok", 5, stale_before=1) == 2
    assert redrive.claim(("r1",), "tok", 5, stale_before=1, force=True) == 2
    normal, forced = fake_db[REJECTED].calls
    assert normal[1] == ({"_id": {"$in": ["r1", "r2"]}, "redriven_at": {"$exists": False},
                          "$or": [{"redrive_claim": {"$exists": False}}, {"redrive_claim.at": {"$lt": 1}}]},
                         {"$set": {"redrive_claim": {"token": "tok", "at": 5}}})
    assert forced[1] == ({"_id": {"$in": ["r1"]}}, {"$set": {"redrive_claim": {"token": "tok", "at": 5}}})


def test_mark_and_release_touch_only_this_runs_claims(store, fake_db):
    redrive = RedriveRepository(store)
    redrive.mark_redriven("tok", [], 7)
    redrive.release("tok", [])
    assert fake_db[REJECTED].calls == []
    redrive.mark_redriven("tok", ["r1"], 7)
    redrive.release("tok", ["r2"])
    marked, released = fake_db[REJECTED].calls
    assert marked[1] == ({"_id": {"$in": ["r1"]}, "redrive_claim.token": "tok"},
                         {"$set": {"redriven_at": 7}, "$unset": {"redrive_claim": ""}})
    assert released[1] == ({"_id": {"$in": ["r2"]}, "redrive_claim.token": "tok"}, {"$unset": {"redrive_claim": ""}})
