"""The local MongoDB-wire server's unique indexes order their keys alike whichever way it compares them.

TxnmonMongoServer compares plain string keys (the usual `_id`) in place instead of Java-serializing both at every
step of a B-tree search (its `KeyOrder`, issue 29); the order must be exactly the serialized one, or a file
written before would be searched wrongly after an upgrade (and one written now, by a server started with
DEVSTACK_MONGO_KEYS_IN_PLACE=0). A private server writes keys of every kind one way, is restarted the other way
on the same file, and must find every key: each one inserted again is refused as a duplicate, and looked up by
`_id` it is there. A key the tree searched in the wrong order would be missed, and inserted a second time.
"""

from __future__ import annotations

import random
import time

import pytest
from pymongo import MongoClient
from pymongo.errors import BulkWriteError

from tests.integration.stack.test_store_durability import PrivateMongo, private_mongo  # noqa: F401

pytestmark = [pytest.mark.integration]

DUPLICATE_KEY = 11000


def _ids(seed: int, n: int) -> list[object]:
    """Ids of every kind the comparison treats differently: plain ASCII of lengths across the one- and two-byte
    boundaries of the serialized length, near-equal ones, and those it leaves to serializing (non-ASCII, long,
    numbers)."""
    rng = random.Random(seed)
    ids: list[object] = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.6:
            ids.append(f"T{rng.randrange(10**9):09d}" + "x" * rng.choice((0, 1, 5, 117, 118, 119, 245, 246, 247, 300)))
        elif kind < 0.75:
            ids.append(f"{rng.choice(('Zürich', 'café', '東京', 'a'))}-{rng.randrange(10**6)}")
        elif kind < 0.9:
            ids.append(rng.randrange(-10**12, 10**12))
        else:
            ids.append(f"{seed}-{rng.randrange(10**4)}")
    return list(dict.fromkeys(ids))


def _insert(uri: str, ids: list[object]) -> None:
    with MongoClient(uri, serverSelectionTimeoutMS=20_000) as client:
        for i in range(0, len(ids), 500):
            client.keys.docs.insert_many([{"_id": k, "pad": "p" * 100} for k in ids[i:i + 500]], ordered=False)


def _all_found(uri: str, ids: list[object]) -> None:
    """Every id is looked up by `_id`, and inserted again is refused as a duplicate; nothing more is stored."""
    with MongoClient(uri, serverSelectionTimeoutMS=20_000) as client:
        docs = client.keys.docs
        missed = [k for k in ids[::7] if docs.find_one({"_id": k}, {"_id": 1}) is None]
        assert not missed, f"{len(missed)} ids not found by _id, e.g. {missed[:3]}"
        for i in range(0, len(ids), 500):
            part = ids[i:i + 500]
            with pytest.raises(BulkWriteError) as refused:
                docs.insert_many([{"_id": k} for k in part], ordered=False)
            codes = [e["code"] for e in refused.value.details["writeErrors"]]
            assert codes == [DUPLICATE_KEY] * len(part), f"ids of batch {i // 500} were not all found as duplicates"
        assert docs.count_documents({}) == len(ids)


def _started(server: PrivateMongo, in_place: bool) -> None:
    """`server` started, and its start-up line (of this start: the log is appended to) saying how it compares."""
    said_before = server.log.stat().st_size if server.log.exists() else 0
    server.start(DEVSTACK_MONGO_KEYS_IN_PLACE="1" if in_place else "0")
    deadline = time.monotonic() + 30  # the port opens a moment before the line is written
    while not (listening := [line for line in server.log.read_bytes()[said_before:].decode(errors="replace")
                             .splitlines() if "mongo-wire server listening" in line]):
        assert time.monotonic() < deadline, "no start-up line within 30 s"
        time.sleep(0.1)
    assert listening[0].endswith(f"unique-index keys compared {'in place' if in_place else 'serialized'})"), listening


def test_keys_written_either_way_are_found_the_other_way(private_mongo: PrivateMongo):  # noqa: F811
    first, second = _ids(1, 2_500), _ids(2, 1_000)
    _started(private_mongo, in_place=False)
    _insert(private_mongo.uri, first)
    private_mongo.stop()

    _started(private_mongo, in_place=True)
    _all_found(private_mongo.uri, first)
    _insert(private_mongo.uri, second)
    private_mongo.stop()

    _started(private_mongo, in_place=False)
    _all_found(private_mongo.uri, first + second)
