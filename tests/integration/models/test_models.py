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
