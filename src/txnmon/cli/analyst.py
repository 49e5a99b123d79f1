"""The analyst's commands: backtest rules, triage alerts, list and re-drive rejected events."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from txnmon.cli.progress import Progress
from txnmon.errors import RulesError, UsageError
from txnmon.settings import DEFAULT_RULES_FILE, Settings


def cmd_backtest(settings: Settings, args: argparse.Namespace) -> int:
    from txnmon.core import backtest
    from txnmon.core.rules import load_rules
    from txnmon.jobs.backtest import load_transactions

    try:
        candidate_rules = load_rules(args.rules)
        baseline_rules = load_rules(args.baseline) if args.baseline else None
    except RulesError as exc:
        raise UsageError(str(exc)) from None
    if not args.topic and not args.data:
        raise UsageError("give --data FILE (a CSV) or --topic (TOPIC_BY_USER, as the processor judged it)")
    model = None
    if args.model:  # scored as the processor scores: the same model gives the same scores
        from txnmon.jobs import models

        model = models.load(settings, None if args.model == "promoted" else args.model)
    weighed = None
    if args.model_weight is not None:
        if model is None or args.baseline:
            raise UsageError("--model-weight needs --model (and no --baseline): it compares the rules alone "
                             "with the rules weighing that model")
        from txnmon.core.model_report import weigh_model

        try:
            weighed = weigh_model(candidate_rules, args.model_threshold, args.model_weight, args.model_raise,
                                  args.model_typology)
        except RulesError as exc:
            raise UsageError(str(exc)) from None
    from txnmon.jobs.backtest_workers import available_cpus

    workers = args.workers or available_cpus()
    with Progress("backtest", "transactions") as progress:
        if args.topic:
            from txnmon.jobs.backtest import backtest_topic

            def run(rules, stage="rules", model=model):  # the by-user topic, in the order the processor judged it
                return backtest_topic(settings, rules, model, workers)
        else:
            from txnmon.jobs.backtest_workers import run_backtest

            progress("reading", 0, None)
            txs, rejected = load_transactions(Path(args.data), settings.zone)
            progress("reading", len(txs) + rejected, len(txs) + rejected)

            def run(rules, stage="rules", model=model):  # users in shares, one process each (--workers)
                return run_backtest(txs, rules, rejected, lambda done, total: progress(stage, done, total), model,
                                    workers)
        if args.model_weight is not None:  # the rules alone, then the rules weighing the model
            return _print_model_comparison(args, run(candidate_rules, model=None), run(weighed, "rules + model"))
        result = run(candidate_rules)
        comparison = baseline = None
        if baseline_rules is not None:
            baseline = run(baseline_rules, "baseline")
            comparison = backtest.compare(result, baseline)
    doc = backtest.to_json(result, comparison, baseline)
    print(json.dumps(doc, indent=2, default=str) if args.json else backtest.render(doc))
    return 0


def _print_model_comparison(args: argparse.Namespace, alone: Any, weighed: Any) -> int:
    """The detection report of the rules weighing the model, and beside it the rules alone's, per
    pattern and per clean behaviour (src/txnmon/core/model_report.py)."""
    from txnmon.core import backtest, model_report

    doc = backtest.to_json(weighed)
    if "quality" not in doc:
        raise UsageError("--model-weight compares detection quality: give a labelled file (fraud_label column)")
    doc["model_comparison"] = model_report.detection_comparison(backtest.to_json(alone)["quality"], doc["quality"])
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(backtest.render(doc) + "\n\nrules alone vs rules + model (" + doc["rules_version"] + "):\n"
              + model_report.render_comparison(doc["model_comparison"]))
    return 0


def cmd_dlq(settings: Settings, args: argparse.Namespace) -> int:
    from txnmon.jobs import dlq

    if args.dlq_command == "list":
        rows = dlq.list_rejected(settings, args.reason, args.since, args.limit)
        counts = dlq.counts_by_reason(settings)
        print("rejected by reason: " + (", ".join(f"{k} {v:,}" for k, v in counts.items()) or "none"))
        for r in rows:
            mark = f"re-driven {r['redriven_at']:%Y-%m-%d %H:%M}" if r.get("redriven_at") else "not re-driven"
            print(f"  {r['_id']:<40} {r['reason']:<17} {r['first_seen']:%Y-%m-%d %H:%M:%S}  {mark}  {r['detail'][:80]}")
        return 0
    result = dlq.redrive(settings, args.reason, args.since, force=args.force)
    print(f"re-drove {result.sent:,} of {result.selected:,} '{args.reason}' records to {settings.topic_raw} "
          f"({result.already_redriven:,} were re-driven before and were left alone"
          + (f", {result.claimed_elsewhere:,} are being re-driven by another run" if result.claimed_elsewhere else "")
          + ")")
    return 0


def cmd_alerts(settings: Settings, args: argparse.Namespace) -> int:
    from txnmon.adapters.mongo import MongoStore
    from txnmon.jobs import triage

    store = MongoStore(settings)
    if args.alerts_command == "show":
        from txnmon.cli.desk import print_alert
        from txnmon.jobs.cases import show_alert

        print_alert(show_alert(store, args.alert_id))
        return 0
    if args.alerts_command == "mark":
        doc = triage.mark(store, args.alert_id, args.disposition, args.reason or "", args.by)
        print(f"{doc['alert_id']}: {doc['disposition']} by {doc['by']}" + (f" ({doc['reason']})" if doc["reason"]
                                                                            else ""))
        return 0
    rows = triage.rule_quality(store)
    print(f"{'rule':<30}{'alerts':>8}{'marked':>8}{'TP':>6}{'FP':>6}{'precision':>11}")
    for r in rows:
        precision = "n/a" if r["precision"] is None else f"{r['precision']:.0%}"
        print(f"{r['rule']:<30}{r['alerts']:>8,}{r['marked']:>8,}{r['true_positives']:>6,}"
              f"{r['false_positives']:>6,}{precision:>11}")
    return 0


def register(sub: Any) -> None:
    from txnmon.cli.base import positive_int, since

    p = sub.add_parser("backtest", help="run rules over a CSV in event-time order, as the processor would")
    p.add_argument("--rules", default=str(DEFAULT_RULES_FILE), help="candidate rules file (default: the shipped one)")
    p.add_argument("--baseline", default=None, help="rules file to compare with: alerts added and dropped")
    p.add_argument("--data", default=None, help="CSV file (a fraud_label column enables recall/precision)")
    p.add_argument("--topic", action="store_true",
                   help="instead of a file: every message of TOPIC_BY_USER, in the order the processor judged them")
    p.add_argument("--model", default=None, metavar="VERSION",
                   help="score with a registered risk model ('promoted': the one in use) for the model_score signal")
    p.add_argument("--model-weight", type=float, default=None, metavar="W",
                   help="with --model: compare the rules alone with the rules weighing model_score W in every "
                        "typology, per pattern and clean behaviour (docs/model.md)")
    p.add_argument("--model-threshold", type=float, default=0.8, metavar="P",
                   help="with --model-weight: the score (0..1) at which model_score is present (default 0.8)")
    p.add_argument("--model-raise", type=float, default=0.0, metavar="R",
                   help="with --model-weight: raise every typology's thresholds by R while the model scores "
                        "(thresholds_with_model; default 0)")
    p.add_argument("--model-typology", action="append", default=None, metavar="NAME",
                   help="with --model-weight: weigh the model in this typology only (repeatable; default: all)")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="judge shares of the users on up to N processes, with the same result as one (default: "
                        "the cores this process may use; one process per 20,000 rows at most)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_backtest)

    p = sub.add_parser("dlq", help="rejected events: list them, re-drive them after a fix")
    dlq_sub = p.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")
    q = dlq_sub.add_parser("list", help="rejected records, newest first, with counts by reason")
    q.add_argument("--reason", default=None)
    q.add_argument("--since", type=since, default=None, help="ISO time or a duration back from now (24h)")
    q.add_argument("--limit", type=positive_int, default=50)
    q = dlq_sub.add_parser("redrive", help="send records back to the topic each was read from (a transaction's "
                                           "to TOPIC_RAW), once each")
    q.add_argument("--reason", required=True, help="re-drive records rejected for this reason")
    q.add_argument("--since", type=since, default=None, help="only records first seen since (ISO time or 24h)")
    q.add_argument("--force", action="store_true",
                   help="also send records marked re-driven or claimed by another run (you know they were lost)")
    p.set_defaults(func=cmd_dlq)

    p = sub.add_parser("alerts", help="triage alerts (true/false positive) and see each rule's precision")
    alerts_sub = p.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")
    q = alerts_sub.add_parser("mark", help="record a disposition for an alert")
    q.add_argument("alert_id")
    q.add_argument("--as", dest="disposition", required=True, choices=["true_positive", "false_positive"])
    q.add_argument("--reason", default="")
    q.add_argument("--by", default=None, help="analyst name (default: the login name)")
    alerts_sub.add_parser("quality", help="per-rule alerts, marked, true/false positives, precision")
    q = alerts_sub.add_parser("show", help="one alert: why it fired (parameters, the prior events counted), its case")
    q.add_argument("alert_id")
    p.set_defaults(func=cmd_alerts)
