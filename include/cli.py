"""`txnmon`: the one command for everything a user does with the pipeline.

    txnmon init                 create topics and indexes (idempotent)
    txnmon config               show the effective settings, secrets masked
    txnmon status               stack health, topic offsets, consumer lag, document counts
    txnmon replay FILE          validate a CSV and produce it to TOPIC_RAW
    txnmon stream               run the streaming processor (a consumer-group member)
    txnmon generate ...         write a synthetic, labelled transactions CSV
    txnmon rollups [--full]     recompute KPI rollup collections
    txnmon quality              data-quality suites over recent data (HTML report + summary)
    txnmon backtest --data F    rules over history: alerts, recall/precision, changes vs a baseline
    txnmon dlq list|redrive     rejected events as data; send them through again after a fix
    txnmon alerts mark|quality  triage alerts as true/false positives; per-rule precision

Exit codes: 0 ok, 1 runtime failure (a service down, a rejected file), 2 bad arguments or config.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from include.config import DEFAULT_RULES_FILE, SAMPLE_CSV, ConfigError, Settings, load_settings
from include.logs import configure_logging

log = logging.getLogger("txnmon")


class UsageError(ValueError):
    """A command-line argument is invalid."""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _since(text: str) -> dt.datetime:
    """An ISO date/time (UTC if no zone) or a duration back from now: 90m, 24h, 7d."""
    from include.rules.config import parse_duration

    try:
        return dt.datetime.now(dt.UTC) - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time or a duration (2025-10-01T12:00, 24h): {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# --- commands ------------------------------------------------------------------------------


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    from include import kafka_io, mongo_io

    created = kafka_io.ensure_topics(settings)
    for info in kafka_io.describe_topics(settings, [settings.topic_raw, settings.topic_enriched,
                                                     settings.topic_dlq]):
        state = "created" if info.name in created else "exists"
        print(f"topic {info.name}: {info.partitions} partitions ({state})")
    db = mongo_io.get_db(settings)
    mongo_io.ensure_indexes(db)
    print(f"mongodb {settings.mongo_db}: indexes ensured")
    return 0


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    shown = settings.masked()
    if args.json:
        print(json.dumps(shown, indent=2, default=str))
    else:
        width = max(map(len, shown))
        for key, value in shown.items():
            print(f"{key:<{width}}  {value}")
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from include import status

    report = status.collect(settings)
    print(json.dumps(report, indent=2, default=str) if args.json else status.render(report))
    return 0 if report["healthy"] else 1


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from include import replay

    if args.window_from or args.window_to:
        if not (args.window_from and args.window_to):
            raise UsageError("--from and --to go together")
        from streaming.window_replay import replay_window

        try:
            done = replay_window(settings, args.window_from, args.window_to)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        print(f"re-ran {done.messages:,} messages from {settings.topic_raw}: {done.new_transactions:,} new "
              f"transactions, {done.already_stored:,} already stored, {done.rejected:,} rejected "
              "(the live consumer group's offsets are untouched)")
        return 0

    summary = replay.replay_csv(settings, Path(args.file), speedup=args.speedup, limit=args.limit,
                                topic=args.topic)
    print(replay.render_summary(summary))
    return 0


def cmd_generate(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from include import generator

    spec = generator.GeneratorSpec(rows=args.rows, users=args.users, fraud_rate=args.fraud_rate, seed=args.seed,
                                   start=args.start, days=args.days)
    try:
        spec.validate()
    except generator.GeneratorError as exc:
        raise UsageError(str(exc)) from None
    started = time.perf_counter()
    df = generator.generate(spec)
    generator.write_csv(df, Path(args.out))
    labelled = df[df["fraud_label"] != ""]
    print(f"wrote {len(df):,} rows ({len(labelled):,} fraud rows in {labelled['fraud_incident'].nunique():,} "
          f"incidents) for {df['user_id'].nunique():,} users to {args.out} in {time.perf_counter() - started:.1f}s")
    return 0


def cmd_rollups(settings: Settings, args: argparse.Namespace) -> int:
    from include import mongo_io, rollups

    db = mongo_io.get_db(settings)
    if args.full:
        run = rollups.run_rollups(db, full_rebuild=True)
    else:
        end = dt.datetime.now(dt.UTC)
        run = rollups.run_rollups(db, end - dt.timedelta(minutes=args.minutes), end)
    scope = "all buckets" if run.full_rebuild else f"{len(run.hours)} touched hour(s)"
    print(f"rollups recomputed for {scope}:")
    for name, n in run.documents.items():
        print(f"  {name:<26} {n:>8,} documents")
    return 0


def cmd_quality(settings: Settings, args: argparse.Namespace) -> int:
    from include import jobs
    from include.quality import QualityCheckFailed

    end = dt.datetime.now(dt.UTC)
    try:
        summaries = jobs.quality_interval(end - dt.timedelta(minutes=args.minutes), end)
    except QualityCheckFailed as exc:
        print(f"txnmon: {exc}", file=sys.stderr)
        return 1
    for s in summaries:
        print(f"{s['suite']:<13} {'PASS' if s['success'] else 'WARN'} {s['rows']:>8,} rows  report: "
              f"{s['report_path']}")
    return 0


def cmd_backtest(settings: Settings, args: argparse.Namespace) -> int:
    from include import backtest
    from include.rules import RulesError, load_rules

    try:
        candidate_rules = load_rules(args.rules)
        baseline_rules = load_rules(args.baseline) if args.baseline else None
    except RulesError as exc:
        raise UsageError(str(exc)) from None
    txs, rejected = backtest.load_transactions(Path(args.data), settings.zone)
    result = backtest.run_backtest(txs, candidate_rules, rejected)
    comparison = baseline = None
    if baseline_rules is not None:
        baseline = backtest.run_backtest(txs, baseline_rules, rejected)
        comparison = backtest.compare(result, baseline)
    doc = backtest.to_json(result, comparison, baseline)
    print(json.dumps(doc, indent=2, default=str) if args.json else backtest.render(doc))
    return 0


def cmd_dlq(settings: Settings, args: argparse.Namespace) -> int:
    from include import dlq

    if args.dlq_command == "list":
        rows = dlq.list_rejected(settings, args.reason, args.since, args.limit)
        counts = dlq.counts_by_reason(settings)
        print("rejected by reason: " + (", ".join(f"{k} {v:,}" for k, v in counts.items()) or "none"))
        for r in rows:
            mark = f"re-driven {r['redriven_at']:%Y-%m-%d %H:%M}" if r.get("redriven_at") else "not re-driven"
            print(f"  {r['_id']:<40} {r['reason']:<17} {r['first_seen']:%Y-%m-%d %H:%M:%S}  {mark}  {r['detail'][:80]}")
        return 0
    result = dlq.redrive(settings, args.reason, args.since)
    print(f"re-drove {result.sent:,} of {result.selected:,} '{args.reason}' records to {settings.topic_raw} "
          f"({result.already_redriven:,} were re-driven before and were left alone)")
    return 0


def cmd_alerts(settings: Settings, args: argparse.Namespace) -> int:
    from include import mongo_io, triage

    db = mongo_io.get_db(settings)
    if args.alerts_command == "mark":
        try:
            doc = triage.mark(db, args.alert_id, args.disposition, args.reason or "", args.by)
        except triage.TriageError as exc:
            raise UsageError(str(exc)) from None
        print(f"{doc['alert_id']}: {doc['disposition']} by {doc['by']}" + (f" ({doc['reason']})" if doc["reason"]
                                                                            else ""))
        return 0
    rows = triage.rule_quality(db)
    print(f"{'rule':<30}{'alerts':>8}{'marked':>8}{'TP':>6}{'FP':>6}{'precision':>11}")
    for r in rows:
        precision = "n/a" if r["precision"] is None else f"{r['precision']:.0%}"
        print(f"{r['rule']:<30}{r['alerts']:>8,}{r['marked']:>8,}{r['true_positives']:>6,}"
              f"{r['false_positives']:>6,}{precision:>11}")
    return 0


def cmd_stream(settings: Settings, args: argparse.Namespace) -> int:
    # The processor is the one place that wires Kafka, rules and MongoDB together; it lives in
    # streaming/ and is loaded only by this sub-command.
    from streaming.processor import run_processor

    return run_processor(settings, max_idle_s=args.exit_when_idle, group_id=args.group)


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "init": cmd_init,
    "config": cmd_config,
    "status": cmd_status,
    "replay": cmd_replay,
    "stream": cmd_stream,
    "generate": cmd_generate,
    "rollups": cmd_rollups,
    "quality": cmd_quality,
    "backtest": cmd_backtest,
    "dlq": cmd_dlq,
    "alerts": cmd_alerts,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="txnmon", description="Real-time e-commerce transaction monitoring.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("init", help="create Kafka topics and MongoDB indexes (idempotent)")

    p = sub.add_parser("config", help="show the effective configuration (secrets masked)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("status", help="stack health, offsets, consumer lag and document counts")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("replay", help="validate a CSV file and produce its rows to TOPIC_RAW")
    p.add_argument("file", nargs="?", default=str(SAMPLE_CSV), help="CSV file (default: the seed sample)")
    p.add_argument("--speedup", type=_positive_float, default=0.0,
                   help="event-time pacing: 60 = one hour of data per minute, 0 = as fast as possible")
    p.add_argument("--limit", type=_positive_int, default=None, help="send at most this many rows")
    p.add_argument("--topic", default=None, help="target topic (default: TOPIC_RAW)")
    p.add_argument("--from", dest="window_from", type=_since, default=None,
                   help="instead of a file: re-run TOPIC_RAW messages that arrived from this time (ISO or 24h)")
    p.add_argument("--to", dest="window_to", type=_since, default=None, help="... until this time (ISO or 1h)")

    p = sub.add_parser("generate", help="write a synthetic, labelled transactions CSV")
    p.add_argument("--rows", type=_positive_int, required=True)
    p.add_argument("--users", type=_positive_int, required=True)
    p.add_argument("--fraud-rate", type=_positive_float, default=0.01, help="share of rows that are fraud (0-0.5)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--start", type=_date, default=dt.date(2025, 10, 1), help="first day, YYYY-MM-DD")
    p.add_argument("--days", type=_positive_int, default=1)
    p.add_argument("--out", required=True, help="CSV file to write")

    p = sub.add_parser("rollups", help="recompute KPI rollups touched recently (or all with --full)")
    p.add_argument("--full", action="store_true", help="recompute every bucket")
    p.add_argument("--minutes", type=_positive_int, default=60,
                   help="buckets touched by data processed in the last N minutes (default 60)")

    p = sub.add_parser("quality", help="run the data-quality suites over recently processed data")
    p.add_argument("--minutes", type=_positive_int, default=60, help="data processed in the last N minutes")

    p = sub.add_parser("backtest", help="run rules over a CSV in event-time order, as the processor would")
    p.add_argument("--rules", default=str(DEFAULT_RULES_FILE), help="candidate rules file (default: the shipped one)")
    p.add_argument("--baseline", default=None, help="rules file to compare with: alerts added and dropped")
    p.add_argument("--data", required=True, help="CSV file (a fraud_label column enables recall/precision)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("dlq", help="rejected events: list them, re-drive them after a fix")
    dlq_sub = p.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    q = dlq_sub.add_parser("list", help="rejected records, newest first, with counts by reason")
    q.add_argument("--reason", default=None)
    q.add_argument("--since", type=_since, default=None, help="ISO time or a duration back from now (24h)")
    q.add_argument("--limit", type=_positive_int, default=50)
    q = dlq_sub.add_parser("redrive", help="send records back to TOPIC_RAW, once each")
    q.add_argument("--reason", required=True, help="re-drive records rejected for this reason")
    q.add_argument("--since", type=_since, default=None, help="only records first seen since (ISO time or 24h)")

    p = sub.add_parser("alerts", help="triage alerts (true/false positive) and see each rule's precision")
    alerts_sub = p.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    q = alerts_sub.add_parser("mark", help="record a disposition for an alert")
    q.add_argument("alert_id")
    q.add_argument("--as", dest="disposition", required=True, choices=["true_positive", "false_positive"])
    q.add_argument("--reason", default="")
    q.add_argument("--by", default=None, help="analyst name (default: the login name)")
    alerts_sub.add_parser("quality", help="per-rule alerts, marked, true/false positives, precision")

    p = sub.add_parser("stream", help="run the streaming processor until SIGTERM/SIGINT")
    p.add_argument("--group", default=None, help="consumer group (default: CONSUMER_GROUP)")
    p.add_argument("--exit-when-idle", type=_positive_float, default=None, metavar="SECONDS",
                   help="exit 0 after this many seconds without messages (for batch runs and tests)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"txnmon: {exc}", file=sys.stderr)
        return 2
    configure_logging(logging.DEBUG if args.verbose else logging.INFO, settings.log_format,
                      client_logs=logging.WARNING if args.verbose else logging.CRITICAL)
    try:
        return COMMANDS[args.command](settings, args)
    except (UsageError, ConfigError) as exc:
        print(f"txnmon: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from include.errors import describe_runtime_error

        message = describe_runtime_error(exc)
        if message is None:
            raise
        print(f"txnmon: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
