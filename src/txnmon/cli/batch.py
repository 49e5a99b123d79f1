"""The micro-batch jobs by hand: rollups and quality (what the Airflow DAGs run on a schedule)."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from txnmon.cli.progress import Progress
from txnmon.settings import Settings


def cmd_rollups(settings: Settings, args: argparse.Namespace) -> int:
    from txnmon.adapters.mongo import MongoStore
    from txnmon.jobs import rollups

    with Progress("rollups", "documents") as progress:
        run = rollups.run_rollups(MongoStore(settings), full_rebuild=args.full, trigger="cli", progress=progress)
    scope = "every hour with data" if run.full_rebuild else f"{len(run.hours)} touched hour(s)"
    print(f"rollups recomputed for {scope} ({run.entries:,} stored batch(es) consumed, "
          f"{run.passes.get('transactions', 0)} pass(es) over transactions), run {run.run_id}:")
    for name, n in run.documents.items():
        print(f"  {name:<26} {n:>8,} documents")
    if run.as_of is not None:
        print(f"KPIs as of {run.as_of:%Y-%m-%d %H:%M:%S} UTC: every batch stored before then is included")
    return 0


def cmd_signals(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from txnmon.adapters.mongo import MongoStore
    from txnmon.jobs import business_signals

    run = business_signals.run_signals(MongoStore(settings), settings, trigger="cli")
    if args.json:
        print(json.dumps(business_signals.summary(run), indent=2))
        return 0
    if run.closed_until is None:
        print("no closed event time yet: the processor has no watermark, or no rollup run recorded it "
              "(run `txnmon rollups` after the processor has stored data)")
        return 0
    print(f"business signals decided up to {run.closed_until:%Y-%m-%d %H:%M} UTC (event time), "
          f"{run.evaluated:,} 5-minute bucket(s) walked this run")
    for e in run.opened:
        print(f"  OPENED   {e['kind']:<22} {e['reason']}")
    for e in run.cleared:
        print(f"  CLEARED  {e['kind']:<22} {e['key']} at {e['cleared_at']:%Y-%m-%d %H:%M} UTC")
    print(f"{run.open_now} signal(s) open (ops_alerts, trends)")
    return 0


def cmd_stock(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from txnmon.adapters.mongo import MongoStore
    from txnmon.cli.base import closed_event_time
    from txnmon.jobs import stock

    store = MongoStore(settings)
    until = closed_event_time(settings, store, args.until)
    if until is None:
        return 0
    run = stock.run_stock(store, settings, closed_until=until, trigger="cli")
    if args.json:
        print(json.dumps(stock.summary(run), indent=2))
        return 0
    print(f"stock walked up to {until:%Y-%m-%d %H:%M:%S} UTC (event time): {run.walked:,} event(s), "
          f"{run.hours:,} closed hour(s), {run.levels:,} level(s)")
    for a in run.opened:
        print(f"  OPENED   {a['kind']:<16} {a['reason']}")
    for a in run.cleared:
        print(f"  CLEARED  {a['kind']:<16} {a['key']} at {a['cleared_at']:%Y-%m-%d %H:%M} UTC")
    print(f"{run.open_now} depletion alert(s) open (ops_alerts)")
    return 0


def cmd_quality(settings: Settings, args: argparse.Namespace) -> int:
    from txnmon.jobs import quality

    end = dt.datetime.now(dt.UTC)
    summaries = quality.quality_interval(settings, end - dt.timedelta(minutes=args.minutes), end)
    for s in summaries:
        print(f"{s['suite']:<13} {'PASS' if s['success'] else 'WARN'} {s['rows']:>8,} rows  report: "
              f"{s['report_path']}")
    return 0


def register(sub: Any) -> None:
    from txnmon.cli.base import positive_int, until_time

    p = sub.add_parser("rollups", help="recompute the KPI rollups of every batch stored since the last run "
                                       "(or all with --full)")
    p.add_argument("--full", action="store_true", help="recompute every bucket")
    p.set_defaults(func=cmd_rollups)

    p = sub.add_parser("signals", help="decide payment-health alerts and trends on the closed event-time buckets "
                                       "(after `txnmon rollups`)")
    p.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    p.set_defaults(func=cmd_signals)

    p = sub.add_parser("stock", help="stock levels, depletion alerts and stock-outs per product and city, "
                                     "in event time")
    ps = p.add_subparsers(dest="stock_command", required=True, metavar="ACTION")
    q = ps.add_parser("run", help="walk stock events and sales up to the closed event time, once")
    q.add_argument("--until", type=until_time, default=None,
                   help="walk up to this ISO time (UTC if no zone), at most the closed event time `txnmon "
                        "events` computes (the default)")
    q.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    p.set_defaults(func=cmd_stock)

    p = sub.add_parser("quality", help="run the data-quality suites over recently processed data")
    p.add_argument("--minutes", type=positive_int, default=60, help="data processed in the last N minutes")
    p.set_defaults(func=cmd_quality)
