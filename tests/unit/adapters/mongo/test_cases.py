"""CasesRepository: the case sink's and the desk's queries and updates, as sent to MongoDB (no server)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import AutoReconnect

from txnmon.adapters.mongo import CasesRepository, MongoStore
from txnmon.core.collection_names import ALERT_DISPOSITIONS, CASES
from txnmon.errors import StoreUnavailable


def test_the_cases_a_batchs_users_can_join(store, fake_db):
    fake_db[CASES].answers["find"] = [{"_id": "c1"}]
    assert CasesRepository(store).of_users([], "t") == [] and fake_db[CASES].calls == []
    assert CasesRepository(store).of_users(["u2", "u1", "u2"], "t") == [{"_id": "c1"}]
    [(method, args, _)] = fake_db[CASES].calls
    assert method == "find"
    assert args == ({"user_id": {"$in": ["u1", "u2"]}, "window_end": {"$gt": "t"}},
                    {"user_id": 1, "status": 1, "window_start": 1, "window_end": 1, "alert_ids": 1, "founded_at": 1})


def test_upsert_is_one_unordered_bulk_write_of_set_operations(store, fake_db):
    fake_db[CASES].answers["bulk_write"] = SimpleNamespace(upserted_count=1)
    before = MongoStore.written[CASES]
    change = {"_id": "c1", "on_insert": {"status": "open"}, "add_to_set": {"alert_ids": ("a1", "a2")},
              "max": {"severity_rank": 3}}
    assert CasesRepository(store).upsert([change, {**change, "_id": "c2", "max": {}}]) == 1
    [(_, (ops,), kwargs), (_, (reopen,), _)] = fake_db[CASES].calls
    assert kwargs == {"ordered": False} and MongoStore.written[CASES] == before + 2
    created = {"$setOnInsert": {"status": "open"}, "$addToSet": {"alert_ids": {"$each": ["a1", "a2"]}}}
    assert ops == [UpdateOne({"_id": "c1"}, {**created, "$max": {"severity_rank": 3}}, upsert=True),
                   UpdateOne({"_id": "c2"}, created, upsert=True)]
    # then, apart: a case closed without one of these alerts reopens (never one closed before closed_with)
    assert reopen[0] == UpdateOne(
        {"_id": "c1", "status": "closed", "closed_with": {"$exists": True},
         "$or": [{"closed_with": {"$ne": "a1"}}, {"closed_with": {"$ne": "a2"}}]},
        {"$set": {"status": "open"}, "$push": {"reopens": {"alert_ids": ["a1", "a2"], "last_event_time": None}}})
    assert CasesRepository(store).upsert([]) == 0 and len(fake_db[CASES].calls) == 2


def test_update_unless_closed_returns_the_case_as_it_was(store, fake_db):
    fake_db[CASES].answers["find_one_and_update"] = {"_id": "c1", "status": "open"}
    cases = CasesRepository(store)
    assert cases.update("c1", "closed", {"assignee": "ana"}) == {"_id": "c1", "status": "open"}
    cases.update("c1", None, {}, note={"text": "hi"})
    first, second = fake_db[CASES].calls
    assert first[1] == ({"_id": "c1", "status": {"$ne": "closed"}}, {"$set": {"assignee": "ana"}})
    assert second[1] == ({"_id": "c1"}, {"$push": {"notes": {"text": "hi"}}})
    assert first[2] == second[2] == {"return_document": ReturnDocument.BEFORE}


def test_label_alerts_upserts_each_disposition_with_its_history(store, fake_db):
    fake_db[ALERT_DISPOSITIONS].answers["bulk_write"] = SimpleNamespace(upserted_count=1, matched_count=1)
    assert CasesRepository(store).label_alerts([("a1", {"d": "fraud"}, {"at": 1}), ("a2", {"d": "ok"}, {"at": 2})]) == 2
    [(_, (ops,), kwargs)] = fake_db[ALERT_DISPOSITIONS].calls
    # a set member: a close finished twice after a crash records its entry once
    assert ops[1] == UpdateOne({"_id": "a2"}, {"$set": {"d": "ok"}, "$addToSet": {"history": {"at": 2}}}, upsert=True)
    assert kwargs == {"ordered": False}
    assert CasesRepository(store).label_alerts([]) == 0


def test_an_outage_is_translated(store, fake_db):
    fake_db[CASES].answers["find"] = AutoReconnect("connection reset")
    with pytest.raises(StoreUnavailable):
        CasesRepository(store).of_users(["u1"], "t")


def test_a_refused_case_does_not_keep_the_others_from_reopening(store, fake_db):
    """Review of #27 item 18: a refusal of one case raised before the reopen step ran, so an alert the
    sink added to a case an analyst had just closed stayed unseen (the sink dead-letters only the refused one)."""
    from pymongo.errors import BulkWriteError

    from txnmon.errors import StoreRefused

    refusal = BulkWriteError({"writeErrors": [{"index": 1, "code": 10334, "errmsg": "too large"}], "nUpserted": 0})
    answers = iter([refusal, SimpleNamespace(upserted_count=0)])

    def bulk_write(ops, ordered):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    fake_db[CASES].answers["bulk_write"] = bulk_write
    changes = [{"_id": c, "on_insert": {}, "add_to_set": {"alert_ids": (f"{c}-a",)}} for c in ("c1", "c2")]
    with pytest.raises(StoreRefused) as caught:
        CasesRepository(store).upsert(changes)
    assert list(caught.value.refused) == [1]
    [_, (_, (reopen,), _)] = fake_db[CASES].calls
    assert [op._filter["_id"] for op in reopen] == ["c1"]  # the written case, not the refused one
