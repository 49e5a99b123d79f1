"""WatermarksRepository: one document per topic partition, saved in one bulk write (no server)."""

from __future__ import annotations

from pymongo import UpdateOne

from txnmon.adapters.mongo import MongoStore, WatermarksRepository
from txnmon.core.collection_names import WATERMARKS


def test_save_upserts_one_document_per_partition(store, fake_db):
    watermarks = WatermarksRepository(store)
    watermarks.save("tx", {})
    assert fake_db[WATERMARKS].calls == []
    before = MongoStore.written[WATERMARKS]
    watermarks.save("tx", {0: {"newest": ["t1", "t2"], "before": ["t0"], "next_offset": 7}, 3: {"newest": ["t3"]}})
    [(method, (ops,), kwargs)] = fake_db[WATERMARKS].calls
    assert method == "bulk_write" and kwargs == {"ordered": False}
    assert ops == [UpdateOne({"_id": "tx:0"}, {"$set": {"topic": "tx", "partition": 0, "newest": ["t1", "t2"],
                                                        "before": ["t0"], "next_offset": 7}}, upsert=True),
                   UpdateOne({"_id": "tx:3"}, {"$set": {"topic": "tx", "partition": 3, "newest": ["t3"]}}, upsert=True)]
    assert MongoStore.written[WATERMARKS] == before + 2


def test_load_reads_the_partitions_asked_for(store, fake_db):
    fake_db[WATERMARKS].answers["find"] = [{"partition": 1, "newest": ["t"], "before": [], "next_offset": 3},
                                           {"partition": 2}]
    assert WatermarksRepository(store).load("tx", []) == {} and fake_db[WATERMARKS].calls == []
    assert WatermarksRepository(store).load("tx", [2, 1, 2]) == {1: {"newest": ["t"], "before": [], "next_offset": 3},
                                                                 2: {}}
    [(_, args, _)] = fake_db[WATERMARKS].calls
    assert args == ({"_id": {"$in": ["tx:1", "tx:2"]}},)
