"""Data-quality suites as data (src/txnmon/data/quality/suites.yaml) and what a run of one found.

Great Expectations runs them (src/txnmon/adapters/great_expectations.py); the job that picks the
interval's data and stores the summaries is src/txnmon/jobs/quality.py. Everything here is plain
data, so unit tests read the suites without GE or a server.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from txnmon.errors import InvalidInputFile

SUITES_FILE = Path(__file__).resolve().parents[1] / "data" / "quality" / "suites.yaml"
_NOW = re.compile(r"^\{now(?:\+(\d+)d)?\}$")


@dataclass
class ExpectationOutcome:
    expectation: str
    column: str | None
    severity: str
    success: bool
    unexpected_count: int | None
    error: str | None = None
    sample: list[Any] | None = None  # a few of the unexpected values (or the observed value), for people


@dataclass
class SuiteOutcome:
    suite: str
    rows: int
    success: bool
    critical_failed: bool
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    report_path: str | None = None

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]


def load_suites(path: Path = SUITES_FILE) -> dict[str, list[dict[str, Any]]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise InvalidInputFile(f"{path}: expected suites by name")
    return data


ALERT_NAMES = "{alert_names}"  # every name an alert may carry: the rules and typologies of the rules versions run


def _fill(value: Any, now: dt.datetime, alert_names: Collection[str] | None) -> Any:
    if isinstance(value, str):
        match = _NOW.match(value)
        if match:
            return now + dt.timedelta(days=int(match.group(1) or 0))
        if value == ALERT_NAMES:
            if alert_names is None:
                raise InvalidInputFile(f"{ALERT_NAMES} is only known when checking stored alerts")
            return sorted(alert_names)
    return value


def resolve_suite(specs: Sequence[Mapping[str, Any]], now: dt.datetime,
                  alert_names: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Specs with run-time values filled in ({now}, {now+Nd}, {alert_names}); plain data, checked by
    unit tests without GE."""
    return [{"expectation": s["expectation"], "severity": s.get("severity", "critical"),
             "kwargs": {k: _fill(v, now, alert_names) for k, v in s.get("kwargs", {}).items()}} for s in specs]


def documents_frame(docs: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(docs, columns=list(columns))
    for col in frame.columns:
        if col.endswith("_time") or col == "created_at":
            frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


TX_COLUMNS = ("transaction_id", "user_id", "amount", "payment_method", "value_category", "event_time",
              "processed_time")
ALERT_COLUMNS = ("alert_id", "transaction_id", "rule", "severity", "event_time", "created_at", "transaction_found")


def summary_document(outcome: SuiteOutcome, start: dt.datetime, end: dt.datetime, run_at: dt.datetime) -> dict:
    return {
        "_id": f"{outcome.suite}:{start.isoformat()}",
        "suite": outcome.suite,
        "interval_start": start,
        "interval_end": end,
        "run_at": run_at,
        "rows": outcome.rows,
        "success": outcome.success,
        "critical_failed": outcome.critical_failed,
        "failed_expectations": [
            {"expectation": o.expectation, "column": o.column, "severity": o.severity,
             "unexpected_count": o.unexpected_count, **({"error": o.error} if o.error else {}),
             **({"sample": o.sample} if o.sample else {})}
            for o in outcome.failed
        ],
        "expectations": len(outcome.outcomes),
        "report_path": outcome.report_path,
    }
