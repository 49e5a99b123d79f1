"""Loading a risk model: an artifact that is not the registered one, or of another feature version,
is refused with the reason; the file loaded is the one the version id names, never a path from the
registry; training reads timestamps as the backtest does and says what it refused
(src/txnmon/jobs/models.py)."""

from __future__ import annotations

import pytest

from txnmon.cli import build_parser
from txnmon.core import features
from txnmon.errors import ModelRefused, TxnmonError
from txnmon.jobs import models


def _doc(raw: bytes, **over: object) -> dict:
    return {"_id": "rm-1", "artifact": "/models/rm-1.lgb.txt", "sha256": models.sha256(raw),
            "feature_version": features.FEATURE_VERSION, "features": list(features.FEATURE_NAMES), **over}


def test_the_registered_bytes_pass() -> None:
    models.verify(_doc(b"tree\n"), b"tree\n", "/models/rm-1.lgb.txt")


def test_changed_bytes_are_refused_naming_the_checksum() -> None:
    with pytest.raises(ModelRefused, match=r"rm-1: artifact /models/rm-1.lgb.txt has sha256 .* corrupt"):
        models.verify(_doc(b"tree\n"), b"tree\n ", "/models/rm-1.lgb.txt")
    assert issubclass(ModelRefused, TxnmonError)


def test_another_feature_version_is_refused() -> None:
    raw = b"tree\n"
    with pytest.raises(ModelRefused, match=f"feature version 0, this code computes version {features.FEATURE_VERSION}"):
        models.verify(_doc(raw, feature_version=0), raw, "x")
    with pytest.raises(ModelRefused, match="retrain"):
        models.verify(_doc(raw, features=["amount"]), raw, "x")


def test_the_cli_has_the_models_commands() -> None:
    parser = build_parser()
    args = parser.parse_args(["models", "train", "--data", "a.csv", "--data", "b.csv"])
    assert args.data == ["a.csv", "b.csv"] and args.rounds == 100
    assert parser.parse_args(["models", "promote", "rm-1"]).version == "rm-1"
    assert parser.parse_args(["models", "show", "rm-1"]).models_command == "show"
    assert parser.parse_args(["models", "demote", "--by", "ops-1"]).by == "ops-1"
    assert parser.parse_args(["models", "list"]).models_command == "list"
    assert parser.parse_args(["backtest", "--data", "a.csv", "--model", "promoted"]).model == "promoted"


def test_the_dag_task_reads_only_files_inside_data_dir(tmp_path) -> None:
    from txnmon.errors import InvalidInputFile
    from txnmon.settings import load_settings

    s = load_settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models")
    with pytest.raises(InvalidInputFile, match="DATA_DIR"):
        models.train_task(s, "../../etc/passwd")
    assert not (tmp_path / "models").exists()


# --- with a stand-in registry: the store itself is tested in tests/integration/models ---


class _Registry:
    """Stands in for ModelVersionsRepository: the documents it holds, what register answers."""

    def __init__(self, docs: dict | None = None, accepts: bool = True) -> None:
        self.docs, self.accepts, self.registered = docs or {}, accepts, []

    def __call__(self, store: object) -> _Registry:
        return self

    def get(self, version: str) -> dict | None:
        return self.docs.get(version)

    def promoted(self) -> dict | None:
        return None

    def register(self, doc: dict) -> bool:
        self.registered.append(doc)
        return self.accepts


def _settings(tmp_path, **over):
    from txnmon.settings import load_settings

    return load_settings(models_dir=tmp_path / "models", **over)


def _use(monkeypatch, registry: _Registry) -> _Registry:
    monkeypatch.setattr(models, "MongoStore", lambda settings: None)
    monkeypatch.setattr(models, "ModelVersionsRepository", registry)
    return registry


def test_load_reads_the_file_the_version_names_not_a_path_from_the_document(tmp_path, monkeypatch) -> None:
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_bytes(b"not a model the operator promoted")
    doc = _doc(elsewhere.read_bytes(), _id="rm-1", artifact=str(elsewhere))
    _use(monkeypatch, _Registry({"rm-1": doc}))
    s = _settings(tmp_path)
    # the document points at a file whose checksum it also holds: still only MODELS_DIR/rm-1.lgb.txt is read
    with pytest.raises(ModelRefused, match=r"cannot read artifact .*models/rm-1\.lgb\.txt"):
        models.load(s, "rm-1")
    assert models.artifact_path(s, "rm-1") == tmp_path / "models" / "rm-1.lgb.txt"


@pytest.mark.parametrize("version", ["../rm-1", "/etc/passwd", "rm-1/..", "a.b", "", "rm 1"])
def test_an_unsafe_version_id_is_refused_before_any_file_is_read(tmp_path, monkeypatch, version) -> None:
    _use(monkeypatch, _Registry({version: _doc(b"x", _id=version)}))
    with pytest.raises(ModelRefused, match="not a safe file name"):
        models.artifact_path(_settings(tmp_path), version)
    if version:
        with pytest.raises(ModelRefused, match="not a safe file name"):
            models.load(_settings(tmp_path), version)


def _day(tmp_path, rows: int = 600, bad: int = 0, seed: int = 5):
    """A labelled generated day with naive timestamps (no zone), `bad` of its rows with no amount."""
    import pandas as pd

    from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

    path = tmp_path / "day.csv"
    write_csv(generate(GeneratorSpec(rows=rows, users=60, fraud_rate=0.05, seed=seed)), path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["timestamp"] = frame["timestamp"].str.rstrip("Z")
    frame.loc[frame.index[:bad], "amount"] = "not-a-number"
    frame.to_csv(path, index=False)
    return path


def test_training_reads_naive_timestamps_in_txnmon_timezone_as_the_backtest_does(tmp_path, monkeypatch) -> None:
    from zoneinfo import ZoneInfo

    from txnmon.core import boosting, risk_model
    from txnmon.core.rules import load_rules
    from txnmon.jobs.backtest import load_transactions

    _use(monkeypatch, _Registry())
    fitted = []
    real_fit = boosting.fit
    monkeypatch.setattr(boosting, "fit",
                        lambda rows, labels, rounds: fitted.append(rows) or real_fit(rows, labels, rounds))
    s = _settings(tmp_path, txnmon_timezone="Asia/Kolkata")
    day = _day(tmp_path)
    models.train(s, [day], rounds=3)

    hour = features.FEATURE_NAMES.index("hour_of_day")
    ruleset = load_rules(s.rules_file)

    def hours(zone: str) -> list[float]:
        txs = load_transactions(day, ZoneInfo(zone))[0]  # the backtest's reading of the file
        return [r[hour] for r in risk_model.time_split(risk_model.training_set(txs, ruleset))[0].rows]

    assert [r[hour] for r in fitted[0]] == hours("Asia/Kolkata")
    assert hours("Asia/Kolkata") != hours("UTC")  # the zone matters for this file


def test_training_refuses_a_file_with_too_many_invalid_rows(tmp_path, monkeypatch) -> None:
    from txnmon.errors import InvalidInputFile

    registry = _use(monkeypatch, _Registry())
    s = _settings(tmp_path)
    with pytest.raises(InvalidInputFile, match=r"10 of 600 rows refused as invalid \(more than 1%\)"):
        models.train(s, [_day(tmp_path, bad=10)], rounds=3)
    assert not registry.registered and not (tmp_path / "models").exists()
    assert InvalidInputFile.exit_code != 0

    doc = models.train(s, [_day(tmp_path, bad=3)], rounds=3)  # 0.5%: trained without them, and said
    assert doc["data"][0]["invalid_rows"] == 3 and doc["data"][0]["rows"] == 597
    assert registry.registered == [doc]


def test_with_several_files_every_one_but_the_last_trains_and_the_last_tests(tmp_path, monkeypatch) -> None:
    """More than one generated day's fraud rows to learn from (docs/model.md: four days trained the model that
    confirmed the rules robustly, one did not): each file replayed through its own state, all but the last
    fitted on, the last held out."""
    from txnmon.core import boosting
    from txnmon.errors import UsageError

    registry = _use(monkeypatch, _Registry())
    fitted = []
    real_fit = boosting.fit
    monkeypatch.setattr(boosting, "fit",
                        lambda rows, labels, rounds: fitted.append(len(rows)) or real_fit(rows, labels, rounds))
    s = _settings(tmp_path)
    days = []
    for name, seed, rows in (("a.csv", 5, 600), ("b.csv", 6, 400), ("c.csv", 7, 300)):
        days.append(tmp_path / name)
        _day(tmp_path, rows=rows, seed=seed).rename(days[-1])
    doc = models.train(s, days, rounds=3)
    assert fitted == [1_000]  # a and b, whole
    assert doc["train_rows"] == 1_000 and doc["test_rows"] == 300
    assert doc["split"] == "train on a.csv, b.csv, test on c.csv"
    assert [d["rows"] for d in doc["data"]] == [600, 400, 300]
    assert registry.registered == [doc]
    with pytest.raises(UsageError, match="give one labelled file"):
        models.train(s, [], rounds=3)


def test_a_version_already_registered_is_an_error_not_a_success(tmp_path, monkeypatch) -> None:
    from txnmon.errors import UsageError

    s = _settings(tmp_path)
    _use(monkeypatch, _Registry(accepts=False))  # another writer registered the same id in between
    with pytest.raises(UsageError, match="registered already"):
        models.train(s, [_day(tmp_path)], rounds=3)


def test_models_train_prints_the_refused_rows_and_exits_non_zero_on_a_clash(tmp_path, monkeypatch, capsys) -> None:
    from txnmon.cli import main

    _use(monkeypatch, _Registry())
    monkeypatch.setattr("txnmon.cli.base.load_settings", lambda: _settings(tmp_path))
    day = _day(tmp_path, bad=2)
    assert main(["models", "train", "--data", str(day), "--rounds", "3"]) == 0
    out = capsys.readouterr().out
    assert "598 rows trained on, 2 refused as invalid" in out and "registered rm-" in out

    _use(monkeypatch, _Registry(accepts=False))
    assert main(["models", "train", "--data", str(day), "--rounds", "3"]) != 0
    assert "registered already" in capsys.readouterr().err


def test_a_loaded_model_scores_a_row_alike_alone_or_in_a_batch_and_explains_it() -> None:
    """The stream scores batches and the backtest chunks of another size: a row's score must not depend
    on the rows beside it; its contributions (pred_contrib) add up to its raw score."""
    import math
    import random

    from txnmon.core import boosting

    rnd = random.Random(3)
    rows = [[rnd.uniform(0, 10) for _ in features.FEATURE_NAMES] for _ in range(300)]
    labels = [int(r[0] > 7) for r in rows]
    model = models.LoadedModel("rm-x", boosting.fit(rows, labels, rounds=5), {})
    together = model.score(rows[:50])
    assert together == [model.score([r])[0] for r in rows[:50]]
    for share, p in zip(model.contributions(rows[:5]), together[:5], strict=True):
        assert len(share) == len(features.FEATURE_NAMES) + 1
        assert math.isclose(1 / (1 + math.exp(-sum(share))), p, rel_tol=1e-9)


def test_training_registers_the_drift_reference_for_the_score_and_each_feature(tmp_path, monkeypatch) -> None:
    from txnmon.core import drift

    registry = _use(monkeypatch, _Registry())
    doc = models.train(_settings(tmp_path), [_day(tmp_path)], rounds=3)
    ref = doc["reference"]
    assert registry.registered == [doc]
    assert set(ref["features"]) == set(features.FEATURE_NAMES)
    for bins in [ref["score"], *ref["features"].values()]:
        assert len(bins["shares"]) == len(bins["edges"]) + 1
        assert sum(bins["shares"]) == pytest.approx(1.0)
        assert bins["edges"] == sorted(set(bins["edges"]))
    assert len(ref["score"]["edges"]) >= 1  # the held-out scores spread over more than one bin
    # the reference is usable as stored: a day of scores all at 0 departs from it
    assert drift.compare(ref, {"score": [0.0] * 200})[0]["psi"] > 0


def test_a_job_judging_again_uses_the_promoted_model_only_where_the_processor_would(monkeypatch):
    from txnmon.core.rules import parse_rules
    from txnmon.errors import ModelArtifactUnreadable, ModelNotFound
    from txnmon.jobs import models as jobs_models
    from txnmon.settings import load_settings

    settings = load_settings(metrics_port=0)
    plain = parse_rules("")
    weighing = parse_rules("typologies:\n  learned: {signals: {model_score: 100}, thresholds: {medium: 100}}\n")
    answers: list = []

    def load(s, version=None):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(jobs_models, "load", load)
    assert jobs_models.in_use(settings, plain) is None  # no typology weighs it: not even asked
    answers[:] = ["the promoted one"]
    assert jobs_models.in_use(settings, weighing) == "the promoted one"
    answers[:] = [ModelNotFound("no model is promoted")]
    assert jobs_models.in_use(settings, weighing) is None
    answers[:] = [ModelArtifactUnreadable("model m1: cannot read artifact")]
    with pytest.raises(ModelArtifactUnreadable, match="cannot read artifact"):  # not judged without it quietly
        jobs_models.in_use(settings, weighing)
