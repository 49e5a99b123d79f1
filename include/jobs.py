"""The jobs Airflow runs, as plain functions: each DAG task calls exactly one of these.

They build settings and clients when called (never at import), so DAG files parse with no
connection, variable or network lookup, and the same jobs run from the CLI and from tests.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from include import mongo_io, replay, rollups
from include.config import PROJECT_ROOT, get_settings
from include.errors import InvalidInputFile
from include.schema import InvalidTransaction, parse_amount, parse_timestamp

log = logging.getLogger("txnmon.jobs")


def resolve_path(path: str | Path) -> Path:
    """Relative paths are taken from the project root, so DAG params work from any directory."""
    p = Path(path)
    return p if p.is_absolute() else PROJECT_ROOT / p


def replay_file_frame(path: Path) -> pd.DataFrame:
    """The CSV as read, plus the contract's own parse of amount and timestamp (null if invalid)."""
    settings = get_settings()
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidInputFile(f"{path}: cannot read as CSV: {exc}") from None
    missing = [c for c in ("transaction_id", "user_id", "amount", "payment_method", "location", "timestamp")
               if c not in frame.columns]
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
            return parse_timestamp(value, settings.zone) if value is not None else None
        except InvalidTransaction:
            return None

    frame["amount_number"] = frame["amount"].map(amount).astype("float64")
    frame["event_time"] = pd.to_datetime(frame["timestamp"].map(event_time), utc=True)
    return frame


def validate_replay_file(path: str | Path) -> dict[str, Any]:
    """Great Expectations over the file; raises InvalidInputFile listing the failures."""
    from include.quality import check_dataframe, load_suites, resolve_suite

    settings = get_settings()
    file = resolve_path(path)
    if not file.is_file():
        raise InvalidInputFile(f"replay file not found: {file}")
    frame = replay_file_frame(file)
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


def replay_window(window_from: str, window_to: str) -> dict[str, Any]:
    """Re-run the raw topic's messages that arrived in [from, to) (ISO times); live offsets untouched."""
    from streaming.window_replay import replay_window as run_window

    def moment(text: str) -> dt.datetime:
        value = dt.datetime.fromisoformat(text)
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    done = run_window(get_settings(), moment(window_from), moment(window_to))
    log.info("window replay: %s", done)
    return {"messages": done.messages, "new_transactions": done.new_transactions,
            "already_stored": done.already_stored, "rejected": done.rejected}


def run_replay(params: dict[str, Any]) -> dict[str, Any]:
    """The replay DAG's one decision: a window of the raw topic, or a (checked) file."""
    if params.get("window_from") or params.get("window_to"):
        if not (params.get("window_from") and params.get("window_to")):
            raise InvalidInputFile("window_from and window_to go together")
        return replay_window(params["window_from"], params["window_to"])
    checked = validate_replay_file(params["file"])
    return replay_file(checked["file"], params["speedup"], params["limit"])


def replay_file(path: str | Path, speedup: float, limit: int | None) -> dict[str, Any]:
    summary = replay.replay_csv(get_settings(), resolve_path(path), speedup=speedup, limit=limit)
    log.info(replay.render_summary(summary))
    return {"rows_sent": summary.rows_sent, "elapsed_s": round(summary.elapsed_s, 3),
            "rate_per_s": round(summary.rate, 1), "topic": summary.topic}


def rollup_interval(start: dt.datetime, end: dt.datetime, full_rebuild: bool = False) -> dict[str, Any]:
    db = mongo_io.get_db(get_settings())
    run = rollups.run_rollups(db, start, end, full_rebuild=full_rebuild)
    log.info("rollups %s: hours %s, documents %s", "full rebuild" if full_rebuild else f"{start} .. {end}",
             run.hours if len(run.hours) < 10 else f"{len(run.hours)} hours", run.documents)
    return {"hours": len(run.hours), "documents": run.documents, "full_rebuild": run.full_rebuild}


def quality_interval(start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    from include.quality import run_quality_checks

    settings = get_settings()
    summaries = run_quality_checks(mongo_io.get_db(settings), start, end, Path(settings.reports_dir))
    for s in summaries:
        log.info("suite %s: %d rows, success=%s, report %s", s["suite"], s["rows"], s["success"], s["report_path"])
    return [{k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in s.items()} for s in summaries]


def backtest_stored(candidate_rules: str | Path, hours: float) -> dict[str, Any]:
    """Candidate rules vs the rules in use over the last `hours` of stored transactions (event time).

    Writes the report (JSON and the terminal table) under REPORTS_DIR/backtests/, next to the
    quality reports, so a change can be reviewed from the Airflow UI before it is applied.
    """
    from include import backtest
    from include.rules import load_rules

    settings = get_settings()
    candidate = load_rules(resolve_path(candidate_rules))
    current = load_rules(settings.rules_file)
    db = mongo_io.get_db(settings)
    newest = mongo_io.find(db, mongo_io.TRANSACTIONS, sort=[("event_time", -1)], limit=1,
                           projection={"event_time": 1})
    if not newest:
        raise InvalidInputFile("no stored transactions to backtest against")
    end = newest[0]["event_time"] + dt.timedelta(milliseconds=1)  # BSON dates have millisecond precision
    start = end - dt.timedelta(hours=hours)
    fields = {"_id": 0, "transaction_id": 1, "user_id": 1, "amount": 1, "location": 1, "event_time": 1, "type": 1,
              "status": 1}
    txs = mongo_io.find(db, mongo_io.TRANSACTIONS, {"event_time": {"$gte": start, "$lt": end}}, projection=fields)
    txs.sort(key=lambda t: (t["event_time"], t["transaction_id"]))
    result = backtest.run_backtest(txs, candidate)
    baseline = backtest.run_backtest(txs, current)
    doc = backtest.to_json(result, backtest.compare(result, baseline), baseline)
    doc["window"] = {"start": start.isoformat(), "end": end.isoformat(), "hours": hours}
    from include.triage import rule_quality

    doc["rule_quality_from_triage"] = rule_quality(db)  # analysts' verdicts on the live rules so far
    doc["candidate_file"] = str(resolve_path(candidate_rules))
    out = Path(settings.reports_dir) / "backtests"
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"backtest_{stamp}.json").write_text(json.dumps(doc, indent=2, default=str))
    table = backtest.render(doc)
    (out / f"backtest_{stamp}.txt").write_text(table + "\n")
    log.info("backtest of %s over %s .. %s:\n%s", doc["candidate_file"], start, end, table)
    doc["report_path"] = str(out / f"backtest_{stamp}.json")
    return doc
