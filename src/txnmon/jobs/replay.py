"""Replay a CSV file of events into their kind's topic at a chosen event-time speed: transactions
(the default) into TOPIC_RAW keyed by user_id, cart events into TOPIC_CARTS (by user_id), stock events
into TOPIC_INVENTORY and reviews into TOPIC_REVIEWS (by product_id): src/txnmon/core/event_contracts.py.

The file is checked against its kind's data contract first; a file with bad rows is refused whole,
with the first problems listed, so a half-sent file never has to be cleaned up.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from txnmon.adapters import kafka
from txnmon.core.contract import InvalidTransaction
from txnmon.core.event_contracts import EventKind, event_kind
from txnmon.errors import InvalidInputFile
from txnmon.jobs.paths import resolve_under
from txnmon.jobs.quality import validate_replay_file
from txnmon.jobs.window_replay import replay_window as run_window
from txnmon.settings import Settings

MAX_LISTED_PROBLEMS = 20
PROGRESS_EVERY = 10_000  # rows between two progress calls while checking
log = logging.getLogger("txnmon.jobs")

Progress = Callable[[str, int, int | None], None]  # (stage, done so far, total or None): the CLI shows it


def _no_progress(stage: str, done: int, total: int | None) -> None:
    pass


@dataclass(frozen=True)
class ReplaySummary:
    file: str
    topic: str
    rows_sent: int
    elapsed_s: float
    speedup: float
    kind: str = "transactions"

    @property
    def rate(self) -> float:
        return self.rows_sent / self.elapsed_s if self.elapsed_s > 0 else float("inf")


def _typed(row: dict[str, str], numeric: tuple[str, ...] = ("amount", "quantity")) -> dict[str, Any]:
    """A CSV row as the JSON a live source would send: empty cells dropped, numbers as numbers."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key is None or value is None or value == "":
            continue
        if key in numeric:
            try:
                number = float(value)
                out[key] = int(number) if number.is_integer() else number
                continue
            except ValueError:
                pass
        out[key] = value
    return out


def read_rows(path: Path, kind: EventKind | None = None) -> Iterator[dict[str, Any]]:
    kind = kind or event_kind("transactions")
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [f for f in kind.columns if f not in (reader.fieldnames or [])]
        if missing:
            raise InvalidInputFile(f"{path}: missing column(s) of a {kind.name} file: {', '.join(missing)}")
        for row in reader:
            yield _typed(row, kind.numeric)


def check_file(path: Path, settings: Settings, limit: int | None = None,
               progress: Progress = _no_progress, kind: str = "transactions",
               ) -> list[tuple[dict[str, Any], dt.datetime]]:
    """Every row (up to `limit`) with its event time, or InvalidInputFile listing the bad rows
    (each judged by the contract of `kind`: transactions, carts, stock or reviews)."""
    contract = event_kind(kind)
    now = dt.datetime.now(dt.UTC)
    rows, problems = [], []
    line = 1
    for line, row in enumerate(read_rows(path, contract), start=2):
        if limit is not None and len(rows) >= limit:
            break
        if line % PROGRESS_EVERY == 0:
            progress("checking", line - 1, limit)
        try:
            tx = contract.normalise(row, zone=settings.zone, now=now)
        except InvalidTransaction as exc:
            problems.append(f"line {line}: {exc.rejection.reason}: {exc.rejection.detail}")
            continue
        rows.append((row, tx["event_time"]))
    progress("checking", len(rows) + len(problems), len(rows) + len(problems))
    if problems:
        shown = "\n  ".join(problems[:MAX_LISTED_PROBLEMS])
        more = f"\n  ... and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
        raise InvalidInputFile(f"{path}: {len(problems)} invalid row(s), nothing sent:\n  {shown}{more}")
    return rows


def replay_csv(
    settings: Settings,
    path: Path,
    *,
    speedup: float = 0.0,
    limit: int | None = None,
    topic: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Progress = _no_progress,
    kind: str = "transactions",
) -> ReplaySummary:
    """Validate `path` as a file of `kind`, then produce its rows to the kind's topic (or `topic`),
    keyed by the kind's key field; speedup 60 plays one hour of event time per minute.

    `progress("checking" | "sending", done, total)` is called as the work goes (about every 5,000 rows)."""
    path = Path(path)
    contract = event_kind(kind)
    rows = check_file(path, settings, limit, progress, kind)
    target = topic or getattr(settings, contract.topic_setting)
    kafka.require_topics(settings, target)
    producer = kafka.make_producer(settings)
    started = time.monotonic()
    first_event = rows[0][1] if rows else None
    total = len(rows)
    progress("sending", 0, total)
    try:
        batch: list[kafka.Message] = []
        for i, (row, event_time) in enumerate(rows):
            if speedup > 0 and first_event is not None:
                due = (event_time - first_event).total_seconds() / speedup
                wait = due - (time.monotonic() - started)
                if wait > 0:
                    _send(producer, target, batch)
                    progress("sending", i, total)
                    sleep(wait)
            key = str(row[contract.key_field]).encode("utf-8")
            batch.append((key, json.dumps(row, ensure_ascii=False).encode("utf-8"), None))
            if len(batch) >= 5000:
                _send(producer, target, batch)
                progress("sending", i + 1, total)
        _send(producer, target, batch)
        progress("sending", total, total)
    finally:
        producer.close()
    return ReplaySummary(str(path), target, len(rows), time.monotonic() - started, speedup, kind)


def _send(producer: Any, topic: str, batch: list[kafka.Message]) -> None:
    if batch:
        kafka.send_all(producer, topic, [(key, value) for key, value, _ in batch])
        batch.clear()


def render_summary(summary: ReplaySummary) -> str:
    pace = "as fast as possible" if summary.speedup == 0 else f"speedup {summary.speedup:g}x"
    what = "rows" if summary.kind == "transactions" else f"{summary.kind} rows"
    return (f"replayed {summary.rows_sent:,} {what} from {summary.file} to {summary.topic} "
            f"in {summary.elapsed_s:.2f}s ({summary.rate:,.0f} rows/s, {pace})")


def replay_window_summary(settings: Settings, window_from: str, window_to: str, notify: bool = True) -> dict[str, Any]:
    """Re-run the raw topic's messages that arrived in [from, to) (ISO times); live offsets untouched.
    `notify=False`: new alerts go to cases but not to the notifications outbox (a backfill)."""
    def moment(text: str) -> dt.datetime:
        value = dt.datetime.fromisoformat(text)
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)

    done = run_window(settings, moment(window_from), moment(window_to), notify=notify)
    log.info("window replay: %s", done)
    return {"messages": done.messages, "new_transactions": done.new_transactions,
            "already_stored": done.already_stored, "rejected": done.rejected, "alerts": done.alerts}


def run_replay(settings: Settings, params: dict[str, Any]) -> dict[str, Any]:
    """The replay DAG's one decision: a window of the raw topic, or a (checked) file of `kind`
    (transactions, the default, carts, stock or reviews)."""
    if params.get("window_from") or params.get("window_to"):
        if not (params.get("window_from") and params.get("window_to")):
            raise InvalidInputFile("window_from and window_to go together")
        return replay_window_summary(settings, params["window_from"], params["window_to"],
                                     notify=params.get("notify", True))
    kind = params.get("kind") or "transactions"
    event_kind(kind)  # an unknown kind is refused before anything is read
    file = resolve_under(params["file"], settings.data_dir, "DATA_DIR")
    if kind == "transactions":  # the Great Expectations suite describes transaction files only
        file = Path(validate_replay_file(settings, file)["file"])
    return replay_file(settings, file, params["speedup"], params["limit"], kind)


def replay_file(settings: Settings, path: str | Path, speedup: float, limit: int | None,
                kind: str = "transactions") -> dict[str, Any]:
    summary = replay_csv(settings, Path(path), speedup=speedup, limit=limit, kind=kind)
    log.info(render_summary(summary))
    return {"rows_sent": summary.rows_sent, "elapsed_s": round(summary.elapsed_s, 3),
            "rate_per_s": round(summary.rate, 1), "topic": summary.topic, "kind": kind}
