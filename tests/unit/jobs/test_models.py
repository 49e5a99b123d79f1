"""Loading a risk model: an artifact that is not the registered one, or of another feature version,
is refused with the reason (src/txnmon/jobs/models.py)."""

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
    models.verify(_doc(b"tree\n"), b"tree\n")


def test_changed_bytes_are_refused_naming_the_checksum() -> None:
    with pytest.raises(ModelRefused, match=r"rm-1: artifact /models/rm-1.lgb.txt has sha256 .* corrupt"):
        models.verify(_doc(b"tree\n"), b"tree\n ")
    assert issubclass(ModelRefused, TxnmonError)


def test_another_feature_version_is_refused() -> None:
    raw = b"tree\n"
    with pytest.raises(ModelRefused, match=f"feature version 0, this code computes version {features.FEATURE_VERSION}"):
        models.verify(_doc(raw, feature_version=0), raw)
    with pytest.raises(ModelRefused, match="retrain"):
        models.verify(_doc(raw, features=["amount"]), raw)


def test_the_cli_has_the_models_commands() -> None:
    parser = build_parser()
    args = parser.parse_args(["models", "train", "--data", "a.csv", "--data", "b.csv"])
    assert args.data == ["a.csv", "b.csv"] and args.rounds == 100
    assert parser.parse_args(["models", "promote", "rm-1"]).version == "rm-1"
    assert parser.parse_args(["models", "show", "rm-1"]).models_command == "show"
    assert parser.parse_args(["models", "list"]).models_command == "list"


def test_the_dag_task_reads_only_files_inside_data_dir(tmp_path) -> None:
    from txnmon.errors import InvalidInputFile
    from txnmon.settings import load_settings

    s = load_settings(data_dir=tmp_path / "data", models_dir=tmp_path / "models")
    with pytest.raises(InvalidInputFile, match="DATA_DIR"):
        models.train_task(s, "../../etc/passwd")
    assert not (tmp_path / "models").exists()
