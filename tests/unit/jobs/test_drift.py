"""The model drift check's report and command (src/txnmon/jobs/drift.py, src/txnmon/cli/models.py);
the check against a real MongoDB is tests/integration/models/test_model_drift.py."""

from __future__ import annotations

import datetime as dt

import pytest

from txnmon.cli import build_parser
from txnmon.cli.models import drift_table
from txnmon.core import drift as core_drift
from txnmon.jobs import drift

DAY = dt.date(2026, 3, 3)


def _rows(score_psi: float | None, status: str) -> list[dict]:
    return [{"name": core_drift.SCORE, "n": 500, "psi": score_psi, "status": status}]


def test_a_drifted_score_fails_the_report_as_a_warning_and_is_keyed_by_version_and_day() -> None:
    run_at = dt.datetime(2026, 3, 4, 1, tzinfo=dt.UTC)
    doc = drift.report_document("rm-1", DAY, _rows(0.9, "drifted"), run_at)
    assert doc["_id"] == "model_drift:rm-1:2026-03-03" and doc["suite"] == "model_drift"
    assert doc["success"] is False and doc["critical_failed"] is False
    assert doc["failed_expectations"][0]["column"] == "score"
    assert doc["interval_start"] == dt.datetime(2026, 3, 3, tzinfo=dt.UTC)
    assert doc["interval_end"] - doc["interval_start"] == dt.timedelta(days=1)
    assert drift.report_document("rm-1", DAY, _rows(0.02, "stable"), run_at)["success"] is True


def test_models_drift_parses_a_day_and_refuses_anything_else(capsys) -> None:
    parser = build_parser()
    assert parser.parse_args(["models", "drift", "--day", "2026-03-03"]).day == DAY
    assert parser.parse_args(["models", "drift"]).day is None
    with pytest.raises(SystemExit):
        parser.parse_args(["models", "drift", "--day", "03/03/2026"])
    assert "not a day" in capsys.readouterr().err


def test_the_table_names_the_model_the_psi_and_the_status() -> None:
    doc = drift.report_document("rm-1", DAY, _rows(0.4321, "drifted"), dt.datetime(2026, 3, 4, tzinfo=dt.UTC))
    table = drift_table(doc, DAY)
    assert "model rm-1" in table and "2026-03-03" in table
    assert "score" in table and "0.432" in table and "drifted" in table
    old = drift.report_document("rm-0", DAY, _rows(None, "no reference"), dt.datetime(2026, 3, 4, tzinfo=dt.UTC))
    assert "no reference" in drift_table(old, DAY)
    assert "no model is promoted" in drift_table(None, DAY)
