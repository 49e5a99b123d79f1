"""The risk model's registry against the real MongoDB-wire server: train, list, promote (audited), and a
corrupted artifact refused at load with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import AUDIT_LOG
from txnmon.errors import ModelNotFound, ModelRefused
from txnmon.jobs import models
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

pytestmark = [pytest.mark.integration]


def test_train_list_promote_and_a_corrupted_artifact_is_refused(settings_factory, tmp_path: Path) -> None:
    s = settings_factory(create_topics=False, models_dir=tmp_path / "models")
    day = tmp_path / "day.csv"
    write_csv(generate(GeneratorSpec(rows=3_000, users=300, fraud_rate=0.03, seed=3)), day)

    doc = models.train(s, [day], rounds=20)
    assert doc["metrics"]["auc"] > 0.8 and doc["data"][0]["rows"] == 3_000
    assert [v["_id"] for v in models.versions(s)] == [doc["_id"]]
    assert models.show(s, doc["_id"])["sha256"] == doc["sha256"]
    with pytest.raises(ModelNotFound, match="no model is promoted"):
        models.load(s)

    promoted = models.promote(s, doc["_id"], by="analyst-1")
    assert promoted["promoted"] is True and promoted["promoted_by"] == "analyst-1"
    loaded = models.load(s)  # the promoted one
    assert loaded.version == doc["_id"] and len(loaded.score([[0.0] * len(doc["features"])])) == 1
    entries = MongoStore(s).find(AUDIT_LOG, {"action": "model.promote"})
    assert [(e["target"], e["who"], e["after"]) for e in entries] == \
        [(f"model:{doc['_id']}", "analyst-1", {"promoted": doc["_id"]})]

    artifact = Path(doc["artifact"])
    artifact.write_bytes(artifact.read_bytes().replace(b"num_leaves", b"num_leaveZ", 1))
    with pytest.raises(ModelRefused, match=r"sha256 .* the file changed or is corrupt"):
        models.load(s, doc["_id"])
    with pytest.raises(ModelRefused):  # nor promoted again
        models.promote(s, doc["_id"], by="analyst-1")


def test_one_model_is_promoted_after_promotes_in_turn_and_at_once(settings_factory, tmp_path: Path) -> None:
    """The promotion is one pointer written atomically (issue 32): promote A then B leaves B alone
    promoted; promotes racing in threads leave exactly one; a version document that says
    `promoted: true` of itself (the Airflow role can insert one) is not believed."""
    import datetime as dt
    from concurrent.futures import ThreadPoolExecutor

    from txnmon.adapters.mongo import ModelVersionsRepository
    from txnmon.core.collection_names import MODEL_VERSIONS

    s = settings_factory(create_topics=False, models_dir=tmp_path / "models")
    day = tmp_path / "day.csv"
    write_csv(generate(GeneratorSpec(rows=600, users=60, fraud_rate=0.05, seed=4)), day)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    a, b = (models.train(s, [day], rounds=3, now=t0 + dt.timedelta(seconds=i))["_id"] for i in range(2))
    repo = ModelVersionsRepository(MongoStore(s))

    models.promote(s, a, by="analyst-1")
    models.promote(s, b, by="analyst-2")
    assert [v["_id"] for v in models.versions(s) if v["promoted"]] == [b]
    assert repo.promoted()["_id"] == b and models.load(s).version == b
    entries = MongoStore(s).find(AUDIT_LOG, {"action": "model.promote", "who": "analyst-2"})
    assert [(e["before"], e["after"]) for e in entries] == [({"promoted": a}, {"promoted": b})]

    # a registered document claiming to be promoted (an insert is all the Airflow role may do)
    MongoStore(s).db[MODEL_VERSIONS].insert_one({**models.show(s, a), "_id": "rm-forged", "promoted": True})
    assert repo.promoted()["_id"] == b
    assert [v["_id"] for v in models.versions(s) if v["promoted"]] == [b]

    with ThreadPoolExecutor(2) as pool:
        for _ in range(5):
            done = list(pool.map(lambda v: models.promote(s, v, by="racer")["_id"], [a, b]))
            assert sorted(done) == sorted([a, b])
            promoted = [v["_id"] for v in models.versions(s) if v["promoted"]]
            assert len(promoted) == 1 and promoted[0] == repo.promoted()["_id"]


def test_demote_leaves_no_model_promoted_and_is_audited(settings_factory, tmp_path: Path) -> None:
    """`txnmon models demote` (issue 32): the pointer says none (the processors drop the model), the audit
    trail names the version demoted, and a second demote has nothing to demote."""
    import datetime as dt

    from txnmon.adapters.mongo.models import ModelVersionsRepository

    s = settings_factory(create_topics=False, models_dir=tmp_path / "models")
    repo = ModelVersionsRepository(MongoStore(s))
    repo.register({"_id": "rm-d", "created_at": dt.datetime.now(dt.UTC)})
    repo.promote("rm-d", at=dt.datetime.now(dt.UTC), by="analyst-1")
    assert repo.promotion() is not None and repo.promotion()[0] == "rm-d"
    assert models.demote(s, by="ops-1") == "rm-d"
    assert repo.promotion() is None and repo.promoted_version() is None and repo.promoted() is None
    assert [v["promoted"] for v in models.versions(s)] == [False]
    entries = MongoStore(s).find(AUDIT_LOG, {"action": "model.demote"})
    assert [(e["target"], e["who"], e["before"], e["after"]) for e in entries] == \
        [("model:rm-d", "ops-1", {"promoted": "rm-d"}, {"promoted": None})]
    with pytest.raises(ModelNotFound, match="nothing to demote"):
        models.demote(s, by="ops-1")
    repo.promote("rm-d", at=dt.datetime.now(dt.UTC), by="analyst-1")  # promoting again works after a demote
    assert repo.promoted_version() == "rm-d"
