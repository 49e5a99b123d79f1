"""Data quality jobs: the interval's stored data through the suites; a replay file checked first.

`run_quality_checks(store, start, end, reports_dir)` validates the transactions processed and the
alerts raised in [start, end), stores one summary per suite in `quality_reports`, and raises
`QualityCheckFailed` when a critical expectation fails.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from txnmon.adapters.great_expectations import check_dataframe
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import ALERTS, QUALITY_REPORTS, RULE_VERSIONS, TRANSACTIONS
from txnmon.core.contract import REQUIRED_FIELDS, InvalidTransaction, parse_amount, parse_timestamp
from txnmon.core.pipeline_checks import PIPELINE_COLUMNS
from txnmon.core.quality import (
    ALERT_COLUMNS,
    TX_COLUMNS,
    documents_frame,
    load_suites,
    resolve_suite,
    summary_document,
)
from txnmon.core.rules import RulesError, load_rules, parse_rules
from txnmon.errors import InvalidInputFile, QualityCheckFailed
from txnmon.jobs.pipeline_checks import pipeline_metrics
from txnmon.settings import PROJECT_ROOT, Settings

log = logging.getLogger("txnmon.jobs")
DEFAULT_REPORTS_DIR = PROJECT_ROOT / "reports"


def interval_frames(store: MongoStore, start: dt.datetime, end: dt.datetime) -> dict[str, pd.DataFrame]:
    """The interval's transactions (by processed_time) and alerts (by created_at) as DataFrames."""
    txs = store.find(TRANSACTIONS, {"processed_time": {"$gte": start, "$lt": end}},
                        projection={c: 1 for c in TX_COLUMNS})
    alerts = store.find(ALERTS, {"created_at": {"$gte": start, "$lt": end}},
                           projection={c: 1 for c in ALERT_COLUMNS if c != "transaction_found"})
    referenced = sorted({a["transaction_id"] for a in alerts})
    found: set[str] = set()
    for i in range(0, len(referenced), 1000):
        chunk = referenced[i:i + 1000]
        found.update(d["_id"] for d in store.find(TRANSACTIONS, {"_id": {"$in": chunk}},
                                                     projection={"_id": 1}))
    for alert in alerts:
        alert["transaction_found"] = alert["transaction_id"] in found
    return {"transactions": documents_frame(txs, TX_COLUMNS), "alerts": documents_frame(alerts, ALERT_COLUMNS)}


def known_alert_names(store: MongoStore, rules_file: Path) -> set[str]:
    """The rule and typology names of every rules version the processor recorded, and of the rules file
    in effect: an alert named otherwise was not raised by txnmon's detector."""
    names = load_rules(rules_file).alert_names()
    for version in store.find(RULE_VERSIONS, {}, projection={"text": 1}):
        try:
            names |= parse_rules(version.get("text") or "", f"rule_versions {version['_id']}").alert_names()
        except RulesError as why:  # a version this code no longer parses: its names are not vouched for
            log.warning("quality: rules version %s is not readable here: %s", version["_id"], why)
    return names


def run_quality_checks(store: MongoStore, start: dt.datetime, end: dt.datetime, reports_dir: Path = DEFAULT_REPORTS_DIR,
                       *, fail_on_critical: bool = True, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Validate the interval, store one summary per suite in quality_reports, return them.

    The `pipeline` suite judges the interval's pipeline metrics (freshness, volume, reconciliation with
    the raw topic when `settings` are given, rollup consistency, DLQ rate); its summary keeps the
    metrics and the details behind them."""
    run_at = dt.datetime.now(dt.UTC)
    suites = load_suites()
    alert_names = known_alert_names(store, (settings or store.settings).rules_file)
    frames = interval_frames(store, start, end)
    metrics, details = pipeline_metrics(store, start, end, run_at, settings)
    frames["pipeline"] = pd.DataFrame([metrics], columns=list(PIPELINE_COLUMNS)).apply(pd.to_numeric)
    quality_dir = Path(reports_dir) / "quality"
    summaries = []
    for name, frame in frames.items():
        outcome = check_dataframe(name, frame, resolve_suite(suites[name], end, alert_names), quality_dir)
        doc = summary_document(outcome, start, end, run_at)
        if name == "pipeline":
            doc["metrics"], doc["details"] = metrics, details
        store.replace_document(QUALITY_REPORTS, doc)
        summaries.append(doc)
    critical = [(d["suite"], f"{d['suite']}: {f['expectation']}({f['column']}) unexpected={f['unexpected_count']}")
                for d in summaries for f in d["failed_expectations"] if f["severity"] == "critical"]
    if critical and fail_on_critical:
        raise QualityCheckFailed("critical expectations failed:\n  " + "\n  ".join(line for _, line in critical),
                                 frozenset(suite for suite, _ in critical))
    return summaries


def replay_file_frame(path: Path, zone: dt.tzinfo) -> pd.DataFrame:
    """The CSV as read, plus the contract's own parse of amount and timestamp (null if invalid)."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidInputFile(f"{path}: cannot read as CSV: {exc}") from None
    missing = [c for c in REQUIRED_FIELDS if c not in frame.columns]
    if missing:
        raise InvalidInputFile(f"{path}: missing column(s): {', '.join(missing)}")
    frame = frame.replace({"": None})

    def amount(value: Any) -> float | None:
        # negative amounts stay numbers so the report names them as out of range, not missing
        try:
            return -parse_amount(value[1:]) if str(value).startswith("-") else parse_amount(value)
        except (InvalidTransaction, TypeError):
            return None

    def event_time(value: Any) -> dt.datetime | None:
        try:
            return parse_timestamp(value, zone) if value is not None else None
        except InvalidTransaction:
            return None

    frame["amount_number"] = frame["amount"].map(amount).astype("float64")
    frame["event_time"] = pd.to_datetime(frame["timestamp"].map(event_time), utc=True)
    return frame


def validate_replay_file(settings: Settings, path: str | Path) -> dict[str, Any]:
    """Great Expectations over the file; raises InvalidInputFile listing the failures."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInputFile(f"replay file not found: {file}")
    frame = replay_file_frame(file, settings.zone)
    specs = resolve_suite(load_suites()["replay_file"], dt.datetime.now(dt.UTC))
    outcome = check_dataframe("replay_file", frame, specs, Path(settings.reports_dir) / "quality")
    for o in outcome.outcomes:
        log.info("%s %s(%s) unexpected=%s", "ok  " if o.success else "FAIL", o.expectation, o.column,
                 o.unexpected_count)
    if outcome.critical_failed:
        failures = "\n  ".join(f"{o.expectation}({o.column}): {o.unexpected_count} unexpected"
                               + (f" [{o.error}]" if o.error else "") for o in outcome.failed)
        raise InvalidInputFile(f"{file} failed validation, nothing sent:\n  {failures}\n"
                               f"  report: {outcome.report_path}")
    return {"file": str(file), "rows": outcome.rows, "report": outcome.report_path}


# suites over stored rows: the same rows fail them again. The pipeline suite compares moving counters
# (offsets committed but not yet stored, batches not yet rolled up) and may pass minutes later.
SUITES_OVER_STORED_ROWS = frozenset({"transactions", "alerts"})


def fails_for_good(exc: QualityCheckFailed) -> bool:
    """A critical failure of the transactions or alerts suite: the same rows would fail the same suite
    two minutes later, so the DAG task fails at once, without its retries, and the on-call person hears
    of it at once. A pipeline-suite failure, or an outage (MongoDB away), keeps the retry."""
    return bool(exc.suites) and exc.suites <= SUITES_OVER_STORED_ROWS


def quality_interval(settings: Settings, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    summaries = run_quality_checks(MongoStore(settings), start, end, Path(settings.reports_dir), settings=settings)
    for s in summaries:
        log.info("suite %s: %d rows, success=%s, report %s", s["suite"], s["rows"], s["success"], s["report_path"])
    return json.loads(json.dumps(summaries, default=lambda v: v.isoformat() if isinstance(v, dt.datetime) else str(v)))
