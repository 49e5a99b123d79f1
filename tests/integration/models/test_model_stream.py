"""The learned score in the stream, against the real broker and MongoDB-wire server (issue 32): a model
trained on a labelled generated day and promoted is loaded by the processor, scores a streamed day, and
its signal fires in a typology with the top factors in the stored alerts; the backtest over the topic
the processor judged gives every transaction the same score; a corrupt artifact is refused at load and
the model in use stays."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from tests.fixtures.pipeline import produce, run_until_idle
from txnmon.adapters.mongo import ModelVersionsRepository, MongoStore
from txnmon.core.collection_names import ALERTS, TRANSACTIONS
from txnmon.core.rules import load_rules
from txnmon.jobs import models
from txnmon.jobs.backtest import backtest_topic
from txnmon.services.model_watcher import ModelWatcher
from txnmon.settings import DEFAULT_RULES_FILE
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

pytestmark = [pytest.mark.integration]

MODEL_TYPOLOGY = """
  learned_risk:
    signals: {model_score: 100}
    thresholds: {medium: 100}
"""


def _rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"  # the shipped rules, the model's signal weighed by a typology of its own
    text = DEFAULT_RULES_FILE.read_text().replace("\nsignals:", "\nsignals:\n  model_score: {threshold: 0.5}", 1)
    path.write_text(text + MODEL_TYPOLOGY)
    return path


def _day(seed: int, rows: int) -> list[dict]:
    frame = generate(GeneratorSpec(rows=rows, users=rows // 10, fraud_rate=0.05, seed=seed))
    return [{k: v for k, v in r.items() if v != ""} for r in frame.to_dict("records")]


def test_the_promoted_model_scores_the_stream_with_explanations_as_the_backtest_does(settings_factory,
                                                                                    tmp_path: Path) -> None:
    s = settings_factory(models_dir=tmp_path / "models", rules_file=_rules(tmp_path), batch_max_records=200)
    training = tmp_path / "day.csv"
    write_csv(generate(GeneratorSpec(rows=2_000, users=200, fraud_rate=0.05, seed=3)), training)
    version = models.train(s, [training], rounds=30)["_id"]
    models.promote(s, version, by="analyst-1")

    produce(s, _day(5, 800))
    run_until_idle(s)

    store = MongoStore(s)
    txs = store.find(TRANSACTIONS, {})
    assert len(txs) == 800 and all(t["model"]["version"] == version for t in txs)
    fired = store.find(ALERTS, {"rule": "learned_risk"})
    assert fired, "the model's signal raised no alert on a day with 5% fraud"
    for alert in fired:
        assert alert["model_version"] == version
        signal = alert["explanation"]["signals"][0]
        assert signal["signal"] == "model_score" and signal["measured"]["score"] >= 0.5
        assert 1 <= len(signal["measured"]["top_features"]) <= 3
        assert all(f["contribution"] > 0 and f["text"] for f in signal["measured"]["top_features"])
    assert any("this user's median of" in f["text"] for a in fired
               for f in a["explanation"]["signals"][0]["measured"]["top_features"])

    # the backtest over the by-user topic, in the order the processor judged it: the same floats
    result = backtest_topic(s, load_rules(s.rules_file), models.load(s))
    assert result.scores == {t["_id"]: t["model"]["score"] for t in txs}
    assert {a for a in result.alerts if a.endswith(":learned_risk")} == {a["_id"] for a in fired}


def test_a_corrupt_artifact_is_refused_at_load_and_the_model_in_use_stays(settings_factory, tmp_path: Path,
                                                                          caplog) -> None:
    s = settings_factory(create_topics=False, models_dir=tmp_path / "models")
    day = tmp_path / "day.csv"
    write_csv(generate(GeneratorSpec(rows=600, users=60, fraud_rate=0.05, seed=4)), day)
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    a, b = (models.train(s, [day], rounds=3, now=t0 + dt.timedelta(seconds=i))["_id"] for i in range(2))
    # the processor's own watcher, on the real registry (every_s=0: every call checks the pointer)
    watcher = ModelWatcher(ModelVersionsRepository(MongoStore(s)).promotion,
                           lambda v: models.load(s, v), 0.0)
    watcher.maybe_reload()
    assert watcher.current is None  # nothing promoted: no model, no error

    models.promote(s, a, by="analyst-1")
    watcher.maybe_reload()
    assert watcher.version == a

    models.promote(s, b, by="analyst-1")  # checked at promote, then the file is damaged on disk
    artifact = models.artifact_path(s, b)
    artifact.write_bytes(artifact.read_bytes().replace(b"num_leaves", b"num_leaveZ", 1))
    with caplog.at_level(logging.ERROR, logger="txnmon.stream"):
        watcher.maybe_reload()
    assert watcher.version == a
    assert f"model {b} refused, keeping {a}" in caplog.text and "the file changed or is corrupt" in caplog.text
