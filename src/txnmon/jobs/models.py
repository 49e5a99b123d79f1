"""The risk model's life: train on labelled days, register, list, show, promote (audited), and load
with its checksum and feature version checked.

An artifact is a file under MODELS_DIR (LightGBM's text model, src/txnmon/core/boosting.py); its
sha256, the features it was trained on, the data it saw and its holdout figures are registered in
`model_versions` (src/txnmon/adapters/mongo/models.py). A file that does not match its registered
checksum, or a model of another FEATURE_VERSION than this code computes, is refused at load.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from txnmon.adapters.mongo import ModelVersionsRepository, MongoStore
from txnmon.core import boosting, features, risk_model
from txnmon.core.rules import load_rules
from txnmon.errors import ModelNotFound, ModelRefused, UsageError
from txnmon.jobs import audit
from txnmon.jobs.backtest import load_transactions
from txnmon.jobs.paths import resolve_under
from txnmon.settings import Settings

log = logging.getLogger("txnmon.jobs")
ARTIFACT_SUFFIX = ".lgb.txt"


@dataclass(frozen=True)
class LoadedModel:
    version: str
    model: Any
    meta: dict[str, Any]

    def score(self, rows: Sequence[Sequence[float]]) -> list[float]:
        return boosting.scores(self.model, rows)


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _data_summary(path: Path, data: risk_model.TrainingSet) -> dict[str, Any]:
    span = data.span
    return {"file": str(path), "rows": len(data), "fraud_rows": sum(data.labels),
            "first_event": span[0] if span else None, "last_event": span[1] if span else None}


def train(settings: Settings, files: Sequence[str | Path], *, rounds: int = boosting.ROUNDS,
          now: dt.datetime | None = None) -> dict[str, Any]:
    """Replay the labelled files through the rules' state, fit on the first (its first 70% of rows by
    event time with one file; the whole first file with two), measure on the rest (or the second
    file), write the artifact and register it. Returns the registered document."""
    if not 1 <= len(files) <= 2:
        raise UsageError("give one labelled file (split 70/30 in time) or two (train on the first, test on the second)")
    ruleset = load_rules(settings.rules_file)
    zone = ZoneInfo("UTC")
    started = time.perf_counter()
    days = [risk_model.training_set(load_transactions(Path(f), zone)[0], ruleset) for f in files]
    replay_seconds = time.perf_counter() - started
    if len(days) == 1:
        train_set, test_set = risk_model.time_split(days[0])
        split = f"first {risk_model.TRAIN_SHARE:.0%} of {Path(files[0]).name} by event time; the rest tests"
    else:
        train_set, test_set = days
        split = f"train on {Path(files[0]).name}, test on {Path(files[1]).name}"
    if not sum(train_set.labels) or sum(train_set.labels) == len(train_set):
        raise UsageError("the training rows need both fraud and clean rows: is the file labelled?")
    started = time.perf_counter()
    model = boosting.fit(train_set.rows, train_set.labels, rounds)
    fit_seconds = time.perf_counter() - started
    metrics = risk_model.evaluate(test_set, boosting.scores(model, test_set.rows))
    raw = boosting.to_bytes(model)
    digest = sha256(raw)
    created = now or dt.datetime.now(dt.UTC)
    version = f"rm-{created:%Y%m%dT%H%M%SZ}-{digest[:8]}"
    folder = Path(settings.models_dir)
    folder.mkdir(parents=True, exist_ok=True)
    artifact = folder / f"{version}{ARTIFACT_SUFFIX}"
    artifact.write_bytes(raw)
    doc = {
        "_id": version, "version": version, "created_at": created, "promoted": False,
        "library": boosting.LIBRARY, "library_version": boosting.library_version(), "rounds": rounds,
        "feature_version": features.FEATURE_VERSION, "features": list(features.FEATURE_NAMES),
        "artifact": str(artifact), "sha256": digest, "size_bytes": len(raw),
        "data": [_data_summary(Path(f), d) for f, d in zip(files, days, strict=True)],
        "split": split, "train_rows": len(train_set), "test_rows": len(test_set),
        "rules_version": ruleset.version, "metrics": metrics,
        "seconds": {"replay": round(replay_seconds, 2), "fit": round(fit_seconds, 2)},
    }
    store = MongoStore(settings)
    ModelVersionsRepository(store).register(doc)
    log.info("model %s trained on %d rows in %.1f s (replay %.1f s): AUC %s", version, len(train_set),
             fit_seconds, replay_seconds, metrics["auc"])
    return doc


def train_task(settings: Settings, data: str, test_data: str | None = None) -> dict[str, Any]:
    """The train_risk_model DAG's task: files named inside DATA_DIR only; a summary for the task log."""
    files = [resolve_under(f, settings.data_dir, "DATA_DIR") for f in (data, test_data) if f]
    doc = train(settings, files)
    return {"version": doc["_id"], "sha256": doc["sha256"], "metrics": doc["metrics"], "seconds": doc["seconds"]}


def versions(settings: Settings) -> list[dict[str, Any]]:
    return ModelVersionsRepository(MongoStore(settings)).versions()


def show(settings: Settings, version: str) -> dict[str, Any]:
    doc = ModelVersionsRepository(MongoStore(settings)).get(version)
    if doc is None:
        raise ModelNotFound(f"no model version {version!r} (see `txnmon models list`)")
    return doc


def promote(settings: Settings, version: str, *, by: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """Make `version` the promoted model, recorded in the audit trail with the one it replaces. The
    artifact is loaded first: a model that would be refused at load is never promoted."""
    store = MongoStore(settings)
    repo = ModelVersionsRepository(store)
    load(settings, version)
    before = repo.promoted()
    at = now or dt.datetime.now(dt.UTC)
    after = repo.promote(version, at=at, by=by)
    if after is None:
        raise ModelNotFound(f"no model version {version!r} (see `txnmon models list`)")
    audit.record(store, "model.promote", by=by, target=f"model:{version}", now=at,
                 before={"promoted": before["_id"] if before else None}, after={"promoted": version},
                 detail={"auc": after.get("metrics", {}).get("auc"), "sha256": after["sha256"]})
    return after


def verify(doc: dict[str, Any], raw: bytes) -> None:
    """Raise ModelRefused unless `raw` is the registered artifact of `doc` and its features are ours."""
    version = doc["_id"]
    found = sha256(raw)
    if found != doc["sha256"]:
        raise ModelRefused(f"model {version}: artifact {doc['artifact']} has sha256 {found[:12]}..., "
                           f"registered {doc['sha256'][:12]}...: the file changed or is corrupt; not loaded")
    if doc.get("feature_version") != features.FEATURE_VERSION or \
            list(doc.get("features", ())) != list(features.FEATURE_NAMES):
        raise ModelRefused(f"model {version} was trained on feature version {doc.get('feature_version')}, "
                           f"this code computes version {features.FEATURE_VERSION}: retrain it")


def load(settings: Settings, version: str | None = None) -> LoadedModel:
    """A registered model (the promoted one when `version` is None), verified before it is parsed."""
    repo = ModelVersionsRepository(MongoStore(settings))
    doc = repo.get(version) if version else repo.promoted()
    if doc is None:
        raise ModelNotFound(f"no model version {version!r}" if version else "no model is promoted")
    try:
        raw = Path(doc["artifact"]).read_bytes()
    except OSError as exc:
        raise ModelRefused(f"model {doc['_id']}: cannot read artifact {doc['artifact']}: {exc.strerror}") from None
    verify(doc, raw)
    return LoadedModel(doc["_id"], boosting.from_bytes(raw), doc)
