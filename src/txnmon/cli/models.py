"""The risk model's commands: `txnmon models train|list|show|promote|demote|drift` (docs/model.md)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from txnmon.cli.base import positive_int
from txnmon.settings import Settings


def _figure(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, float) else "-"


def _line(doc: dict[str, Any]) -> str:
    """One version on one line: promoted mark, id, when, features, AUC, precision and recall at the
    rules' alert count."""
    metrics = doc.get("metrics", {})
    at_k = metrics.get("model_at_rules_count", {})
    mark = "*" if doc.get("promoted") else " "
    return (f"{mark} {doc['_id']:<30} {doc['created_at']:%Y-%m-%d %H:%M}  features v{doc['feature_version']}  "
            f"AUC {_figure(metrics.get('auc'), '.3f')}  precision {_figure(at_k.get('precision'), '.1%')}  "
            f"recall {_figure(at_k.get('recall'), '.1%')} at {metrics.get('rules_alerts')} alerts")


def day_arg(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day (YYYY-MM-DD): {text!r}") from None


def drift_table(doc: dict[str, Any] | None, day: dt.date) -> str:
    """The drift report as printed: one line per checked distribution, the thresholds said once."""
    if doc is None:
        return f"{day}: no model is promoted, nothing checked"
    lines = [f"model {doc['model_version']}, transactions processed on {doc['day']} (UTC)",
             f"{'what':<12} {'n':>8} {'PSI':>8}  status",
             *(f"{r['name']:<12} {r['n']:>8} {_figure(r['psi'], '8.3f'):>8}  {r['status']}" for r in doc["drift"]),
             "PSI < 0.1 stable, 0.1-0.25 moving, > 0.25 drifted; the score only (the stream stores no feature vectors)"]
    return "\n".join(lines)


def cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    # LightGBM and the MongoDB client are loaded only by these sub-commands
    from txnmon.jobs import audit, models

    if args.models_command == "train":
        doc = models.train(settings, args.data, rounds=args.rounds)
        for data in doc["data"]:
            print(f"{data['file']}: {data['rows']} rows trained on, {data['invalid_rows']} refused as invalid")
        print(f"registered {doc['_id']}")
        print(_line(doc))
        print(json.dumps(doc["metrics"], default=str, indent=2))
        return 0
    if args.models_command == "promote":
        doc = models.promote(settings, args.version, by=audit.who(args.by))
        print(f"model {doc['_id']} promoted by {doc['promoted_by']}")
        return 0
    if args.models_command == "drift":
        from txnmon.jobs import drift

        day = args.day or (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date()
        doc = drift.check_day(settings, day)
        print(json.dumps(doc, default=str, indent=2) if args.json else drift_table(doc, day))
        return 0
    if args.models_command == "demote":
        by = audit.who(args.by)
        print(f"model {models.demote(settings, by=by)} demoted by {by}: no model is promoted")
        return 0
    if args.models_command == "show":
        print(json.dumps(models.show(settings, args.version), default=str, indent=2))
        return 0
    rows = models.versions(settings)
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
    for row in [] if args.json else rows:
        print(_line(row))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("models", help="the learned risk score: train, list, show, promote, demote")
    ms = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    q = ms.add_parser("train", help="train on a labelled `txnmon generate` file (70/30 in time) or two (A, then B)")
    q.add_argument("--data", action="append", required=True, metavar="FILE",
                   help="labelled CSV; give it more than once to train on every file but the last and test on the last")
    q.add_argument("--rounds", type=positive_int, default=100, help="boosting rounds (default 100)")
    q = ms.add_parser("list", help="every registered version, newest first (* = promoted)")
    q.add_argument("--json", action="store_true")
    q = ms.add_parser("show", help="one version's metadata, checksum and holdout figures")
    q.add_argument("version")
    q = ms.add_parser("promote", help="make a version the promoted one (audited)")
    q.add_argument("version")
    q.add_argument("--by", default=None, help="who (audit trail; default: your login)")
    q = ms.add_parser("drift", help="the promoted model's scores of a day against its training reference (PSI)")
    q.add_argument("--day", type=day_arg, default=None, help="YYYY-MM-DD, UTC (default: yesterday)")
    q.add_argument("--json", action="store_true")
    q = ms.add_parser("demote", help="promote no model: the stream stops scoring (audited)")
    q.add_argument("--by", default=None, help="who (audit trail; default: your login)")
    p.set_defaults(func=cmd_models)
