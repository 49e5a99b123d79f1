"""The risk model's life: train on labelled days, register, list, show, promote (audited), and load
with its checksum and feature version checked.

An artifact is the file MODELS_DIR/<version>.lgb.txt (LightGBM's text model, src/txnmon/core/boosting.py),
its path derived from the version id, never read from the registry (a document cannot steer which file
is loaded); its sha256, the features it was trained on, the data it saw and its holdout figures are registered in
`model_versions` (src/txnmon/adapters/mongo/models.py). A file that does not match its registered
checksum, or a model of another FEATURE_VERSION than this code computes, is refused at load.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from txnmon.adapters.mongo import ModelVersionsRepository, MongoStore
from txnmon.core import boosting, drift, features, risk_model
from txnmon.core.rules import RuleSet, load_rules
from txnmon.errors import InvalidInputFile, ModelArtifactUnreadable, ModelNotFound, ModelRefused, UsageError
from txnmon.jobs import audit
from txnmon.jobs.backtest import load_transactions
from txnmon.jobs.paths import resolve_under
from txnmon.settings import Settings

log = logging.getLogger("txnmon.jobs")
ARTIFACT_SUFFIX = ".lgb.txt"
# a version id names a file under MODELS_DIR: letters, digits, '-' and '_' only (no '/', no '..')
SAFE_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
# a labelled file with more refused rows than this trains on a day that is not the one it describes
MAX_INVALID_SHARE = 0.01


@dataclass(frozen=True)
class LoadedModel:
    version: str
    model: Any
    meta: dict[str, Any]

    def score(self, rows: Sequence[Sequence[float]]) -> list[float]:
        return boosting.scores(self.model, rows)

    def contributions(self, rows: Sequence[Sequence[float]]) -> list[list[float]]:
        return boosting.contributions(self.model, rows)


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _data_summary(path: Path, data: risk_model.TrainingSet) -> dict[str, Any]:
    span = data.span
    return {"file": str(path), "rows": len(data), "fraud_rows": sum(data.labels),
            "first_event": span[0] if span else None, "last_event": span[1] if span else None}


def artifact_path(settings: Settings, version: str) -> Path:
    """Where `version`'s artifact is: always MODELS_DIR/<version>.lgb.txt, the id checked first."""
    if not SAFE_VERSION.fullmatch(version):
        raise ModelRefused(f"model version {version!r} is not a safe file name: not loaded")
    return Path(settings.models_dir) / f"{version}{ARTIFACT_SUFFIX}"


def labelled_days(settings: Settings, files: Sequence[str | Path],
                  ruleset: Any) -> tuple[list[risk_model.TrainingSet], list[int]]:
    """Each file replayed into feature rows, read as the backtest reads it (naive timestamps in
    TXNMON_TIMEZONE), and each file's count of refused rows. Raises InvalidInputFile when more than
    MAX_INVALID_SHARE of a file's rows are refused."""
    days, invalid = [], []
    for f in files:
        txs, refused = load_transactions(Path(f), settings.zone)
        total = len(txs) + refused
        if refused and refused > MAX_INVALID_SHARE * total:
            raise InvalidInputFile(f"{f}: {refused} of {total} rows refused as invalid (more than "
                                   f"{MAX_INVALID_SHARE:.0%}): fix the file before training on it")
        if refused:
            log.warning("%s: %d of %d rows refused as invalid, trained without them", f, refused, total)
        days.append(risk_model.training_set(txs, ruleset))
        invalid.append(refused)
    return days, invalid


def train(settings: Settings, files: Sequence[str | Path], *, rounds: int = boosting.ROUNDS,
          now: dt.datetime | None = None) -> dict[str, Any]:
    """Replay the labelled files through the rules' state, fit (on the first 70% of rows by event time with
    one file; on every file but the last with more), measure on the rest (or the last file), write the
    artifact and register it. Returns the registered document."""
    if not files:
        raise UsageError("give one labelled file (split 70/30 in time) or more (train on all but the last, "
                         "test on the last)")
    ruleset = load_rules(settings.rules_file)
    started = time.perf_counter()
    days, invalid = labelled_days(settings, files, ruleset)
    replay_seconds = time.perf_counter() - started
    if len(days) == 1:
        train_set, test_set = risk_model.time_split(days[0])
        split = f"first {risk_model.TRAIN_SHARE:.0%} of {Path(files[0]).name} by event time; the rest tests"
    else:  # several days: more fraud rows than one day's couple of hundred (docs/model.md)
        train_set, test_set = risk_model.joined(days[:-1]), days[-1]
        split = f"train on {', '.join(Path(f).name for f in files[:-1])}, test on {Path(files[-1]).name}"
    if not sum(train_set.labels) or sum(train_set.labels) == len(train_set):
        raise UsageError("the training rows need both fraud and clean rows: is the file labelled?")
    started = time.perf_counter()
    model = boosting.fit(train_set.rows, train_set.labels, rounds)
    fit_seconds = time.perf_counter() - started
    test_scores = boosting.scores(model, test_set.rows)
    metrics = risk_model.evaluate(test_set, test_scores)
    # the drift check's reference (core/drift.py): the features as trained on; the score as the held-out
    # rows got it, because scores of the rows a model was fitted on are more extreme than the stream's
    reference = drift.model_reference(test_scores, train_set.rows, features.FEATURE_NAMES)
    raw = boosting.to_bytes(model)
    digest = sha256(raw)
    created = now or dt.datetime.now(dt.UTC)
    version = f"rm-{created:%Y%m%dT%H%M%SZ}-{digest[:8]}"
    artifact = artifact_path(settings, version)
    store = MongoStore(settings)
    repo = ModelVersionsRepository(store)
    if repo.get(version) is not None:  # same second, same bytes: already registered, file left as it is
        raise UsageError(f"model version {version} is registered already: not registered again")
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_bytes(raw)
    doc = {
        "_id": version, "version": version, "created_at": created,
        "library": boosting.LIBRARY, "library_version": boosting.library_version(), "rounds": rounds,
        "feature_version": features.FEATURE_VERSION, "features": list(features.FEATURE_NAMES),
        "artifact": str(artifact), "sha256": digest, "size_bytes": len(raw),
        "data": [{**_data_summary(Path(f), d), "invalid_rows": n}
                 for f, d, n in zip(files, days, invalid, strict=True)],
        "split": split, "train_rows": len(train_set), "test_rows": len(test_set),
        "rules_version": ruleset.version, "metrics": metrics, "reference": reference,
        "seconds": {"replay": round(replay_seconds, 2), "fit": round(fit_seconds, 2)},
    }
    if not repo.register(doc):
        raise UsageError(f"model version {version} is registered already: not registered again")
    log.info("model %s trained on %d rows in %.1f s (replay %.1f s): AUC %s", version, len(train_set),
             fit_seconds, replay_seconds, metrics["auc"])
    return doc


def train_task(settings: Settings, data: str, test_data: str | None = None) -> dict[str, Any]:
    """The train_risk_model DAG's task: files named inside DATA_DIR only; a summary for the task log."""
    files = [resolve_under(f, settings.data_dir, "DATA_DIR") for f in (data, test_data) if f]
    doc = train(settings, files)
    return {"version": doc["_id"], "invalid_rows": [d["invalid_rows"] for d in doc["data"]],
            "sha256": doc["sha256"], "metrics": doc["metrics"], "seconds": doc["seconds"]}


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
    at = now or dt.datetime.now(dt.UTC)
    promoted = repo.promote(version, at=at, by=by)
    if promoted is None:
        raise ModelNotFound(f"no model version {version!r} (see `txnmon models list`)")
    after, before = promoted
    audit.record(store, "model.promote", by=by, target=f"model:{version}", now=at,
                 before={"promoted": before}, after={"promoted": version},
                 detail={"auc": after.get("metrics", {}).get("auc"), "sha256": after["sha256"]})
    return after


def demote(settings: Settings, *, by: str, now: dt.datetime | None = None) -> str:
    """No model promoted any more (the processors stop scoring within seconds), recorded in the audit
    trail with the version it demoted; which is returned. Nothing promoted: ModelNotFound."""
    store = MongoStore(settings)
    at = now or dt.datetime.now(dt.UTC)
    before = ModelVersionsRepository(store).demote(at=at, by=by)
    if before is None:
        raise ModelNotFound("no model is promoted: nothing to demote")
    audit.record(store, "model.demote", by=by, target=f"model:{before}", now=at,
                 before={"promoted": before}, after={"promoted": None})
    return before


def verify(doc: dict[str, Any], raw: bytes, artifact: Path | str) -> None:
    """Raise ModelRefused unless `raw` (read from `artifact`) is the registered artifact of `doc` and
    its features are ours."""
    version = doc["_id"]
    found = sha256(raw)
    if found != doc["sha256"]:
        raise ModelRefused(f"model {version}: artifact {artifact} has sha256 {found[:12]}..., "
                           f"registered {doc['sha256'][:12]}...: the file changed or is corrupt; not loaded")
    if doc.get("feature_version") != features.FEATURE_VERSION or \
            list(doc.get("features", ())) != list(features.FEATURE_NAMES):
        raise ModelRefused(f"model {version} was trained on feature version {doc.get('feature_version')}, "
                           f"this code computes version {features.FEATURE_VERSION}: retrain it")


def load(settings: Settings, version: str | None = None) -> LoadedModel:
    """A registered model (the promoted one when `version` is None), verified before it is parsed."""
    if version:
        artifact_path(settings, version)  # an unsafe id is refused before the store is asked
    repo = ModelVersionsRepository(MongoStore(settings))
    doc = repo.get(version) if version else repo.promoted()
    if doc is None:
        raise ModelNotFound(f"no model version {version!r}" if version else "no model is promoted")
    artifact = artifact_path(settings, doc["_id"])
    try:
        raw = artifact.read_bytes()
    except OSError as exc:
        raise ModelArtifactUnreadable(f"model {doc['_id']}: cannot read artifact {artifact}: {exc.strerror}") from None
    verify(doc, raw, artifact)
    return LoadedModel(doc["_id"], boosting.from_bytes(raw), doc)


def in_use(settings: Settings, ruleset: RuleSet) -> LoadedModel | None:
    """The promoted model as the processor judges with it, for a job that judges again (a window replay,
    a rule-change backtest): today's promoted one, as such a job uses today's rules and lists. None when no
    typology of `ruleset` weighs `model_score` (the processor does not score then) or none is promoted.
    An artifact this host cannot read or verify raises ModelRefused: judged without the model, a replay
    would raise and route alerts the processor (which holds it) never raised."""
    if "model_score" not in ruleset.used_signals():
        return None
    try:
        return load(settings)
    except ModelNotFound:
        return None
