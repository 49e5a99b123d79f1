"""Data quality with Great Expectations 1.x: suites as data (suites.yaml), results as Data Docs
HTML plus a summary document in `quality_reports`.

`run_quality_checks(db, start, end, reports_dir)` validates the transactions processed and the
alerts raised in [start, end) and raises `QualityCheckFailed` when a critical expectation fails.
The replay's file check uses the same machinery on a CSV (`check_dataframe`).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from include import mongo_io
from include.config import INCLUDE_DIR, PROJECT_ROOT

SUITES_FILE = INCLUDE_DIR / "quality" / "suites.yaml"
QUALITY_REPORTS = mongo_io.QUALITY_REPORTS
DEFAULT_REPORTS_DIR = PROJECT_ROOT / "reports"
_NOW = re.compile(r"^\{now(?:\+(\d+)d)?\}$")


class QualityCheckFailed(RuntimeError):
    """A critical expectation failed; the message names them."""


@dataclass
class ExpectationOutcome:
    expectation: str
    column: str | None
    severity: str
    success: bool
    unexpected_count: int | None
    error: str | None = None


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
        raise ValueError(f"{path}: expected suites by name")
    return data


def _fill(value: Any, now: dt.datetime) -> Any:
    if isinstance(value, str):
        match = _NOW.match(value)
        if match:
            return now + dt.timedelta(days=int(match.group(1) or 0))
    return value


def resolve_suite(specs: Sequence[Mapping[str, Any]], now: dt.datetime) -> list[dict[str, Any]]:
    """Specs with run-time values filled in; plain data, checked by unit tests without GE."""
    return [{"expectation": s["expectation"], "severity": s.get("severity", "critical"),
             "kwargs": {k: _fill(v, now) for k, v in s.get("kwargs", {}).items()}} for s in specs]


@functools.cache
def _context(reports_dir: str) -> Any:
    # Imported lazily: great_expectations takes seconds to import and DAG parsing must stay fast.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines are about temp dirs
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    site = {"class_name": "SiteBuilder", "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": reports_dir}}
    if "local_site" in ctx.list_data_docs_sites():
        ctx.update_data_docs_site("local_site", site)
    else:
        ctx.add_data_docs_site("local_site", site)
    return ctx


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def check_dataframe(suite_name: str, frame: pd.DataFrame, specs: Sequence[Mapping[str, Any]],
                    reports_dir: Path) -> SuiteOutcome:
    """Validate `frame` against resolved specs; Data Docs go to `reports_dir`."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    ctx = _context(str(reports_dir))
    expectations = [getattr(gxe, _camel(s["expectation"]))(**s["kwargs"], severity=s["severity"]) for s in specs]
    suite = ctx.suites.add_or_update(gx.ExpectationSuite(name=suite_name, expectations=expectations))
    batch = (ctx.data_sources.add_or_update_pandas(f"{suite_name}_source")
             .add_dataframe_asset(suite_name).add_batch_definition_whole_dataframe("whole"))
    definition = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=f"{suite_name}_validation", data=batch, suite=suite))
    checkpoint = ctx.checkpoints.add_or_update(gx.Checkpoint(
        name=f"{suite_name}_checkpoint", validation_definitions=[definition],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["local_site"])],
        result_format={"result_format": "SUMMARY"}))
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    outcome = SuiteOutcome(suite_name, len(frame), bool(result.success), False)
    for run_id, validation in result.run_results.items():
        for r in validation.results:
            cfg = r.expectation_config
            count = r.result.get("unexpected_count") if r.result else None
            error = None
            if r.exception_info and any(v.get("raised_exception") for v in _exceptions(r.exception_info)):
                error = "; ".join(str(v.get("exception_message")) for v in _exceptions(r.exception_info))[:300]
            severity = getattr(cfg.severity, "value", str(cfg.severity))
            ok = bool(r.success) and error is None
            outcome.outcomes.append(ExpectationOutcome(cfg.type, cfg.kwargs.get("column"), severity, ok, count, error))
            if not ok and severity == "critical":
                outcome.critical_failed = True
        urls = ctx.get_docs_sites_urls(resource_identifier=run_id, site_name="local_site")
        if urls:
            outcome.report_path = urls[0]["site_url"].removeprefix("file://")
    outcome.success = not outcome.failed
    return outcome


def _exceptions(info: Any) -> list[dict[str, Any]]:
    if isinstance(info, dict) and "raised_exception" in info:
        return [info]
    if isinstance(info, dict):
        return [v for v in info.values() if isinstance(v, dict)]
    return []


def _frame(docs: list[dict[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(docs, columns=list(columns))
    for col in frame.columns:
        if col.endswith("_time") or col == "created_at":
            frame[col] = pd.to_datetime(frame[col], utc=True)
    return frame


TX_COLUMNS = ("transaction_id", "user_id", "amount", "payment_method", "value_category", "event_time",
              "processed_time")
ALERT_COLUMNS = ("alert_id", "transaction_id", "rule", "severity", "event_time", "created_at", "transaction_found")


def interval_frames(db: Any, start: dt.datetime, end: dt.datetime) -> dict[str, pd.DataFrame]:
    """The interval's transactions (by processed_time) and alerts (by created_at) as DataFrames."""
    txs = mongo_io.find(db, mongo_io.TRANSACTIONS, {"processed_time": {"$gte": start, "$lt": end}},
                        projection={c: 1 for c in TX_COLUMNS})
    alerts = mongo_io.find(db, mongo_io.ALERTS, {"created_at": {"$gte": start, "$lt": end}},
                           projection={c: 1 for c in ALERT_COLUMNS if c != "transaction_found"})
    referenced = sorted({a["transaction_id"] for a in alerts})
    found: set[str] = set()
    for i in range(0, len(referenced), 1000):
        chunk = referenced[i:i + 1000]
        found.update(d["_id"] for d in mongo_io.find(db, mongo_io.TRANSACTIONS, {"_id": {"$in": chunk}},
                                                     projection={"_id": 1}))
    for alert in alerts:
        alert["transaction_found"] = alert["transaction_id"] in found
    return {"transactions": _frame(txs, TX_COLUMNS), "alerts": _frame(alerts, ALERT_COLUMNS)}


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
             "unexpected_count": o.unexpected_count, **({"error": o.error} if o.error else {})}
            for o in outcome.failed
        ],
        "expectations": len(outcome.outcomes),
        "report_path": outcome.report_path,
    }


def run_quality_checks(db: Any, start: dt.datetime, end: dt.datetime, reports_dir: Path = DEFAULT_REPORTS_DIR,
                       *, fail_on_critical: bool = True) -> list[dict[str, Any]]:
    """Validate the interval, store one summary per suite in quality_reports, return them."""
    run_at = dt.datetime.now(dt.UTC)
    suites = load_suites()
    frames = interval_frames(db, start, end)
    quality_dir = Path(reports_dir) / "quality"
    summaries = []
    for name, frame in frames.items():
        outcome = check_dataframe(name, frame, resolve_suite(suites[name], end), quality_dir)
        doc = summary_document(outcome, start, end, run_at)
        mongo_io.replace_document(db, QUALITY_REPORTS, doc)
        summaries.append(doc)
    critical = [f"{d['suite']}: {f['expectation']}({f['column']}) unexpected={f['unexpected_count']}"
                for d in summaries for f in d["failed_expectations"] if f["severity"] == "critical"]
    if critical and fail_on_critical:
        raise QualityCheckFailed("critical expectations failed:\n  " + "\n  ".join(critical))
    return summaries
