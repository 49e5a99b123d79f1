"""`txnmon sentiment run`: the review-sentiment walk once, by hand (`txnmon events` runs it as it stores)."""

from __future__ import annotations

import argparse
from typing import Any

from txnmon.cli.base import until_time
from txnmon.settings import Settings


def cmd_sentiment_run(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from txnmon.adapters.mongo import MongoStore
    from txnmon.cli.base import closed_event_time
    from txnmon.jobs import sentiment

    store = MongoStore(settings)
    closed = closed_event_time(settings, store, args.until)
    if closed is None:
        return 0
    run = sentiment.run_sentiment(store, settings, closed_until=closed, trigger="cli")
    if args.json:
        print(json.dumps(sentiment.summary(run), indent=2))
        return 0
    if run.decided_until is None:
        print(f"no review before {closed:%Y-%m-%d %H:%M} UTC: nothing to decide")
        return 0
    print(f"review sentiment decided up to {run.decided_until:%Y-%m-%d %H:%M} UTC (event time): "
          f"{run.hours:,} hour(s) walked, {run.scored:,} review(s) scored this run")
    for e in run.opened:
        print(f"  OPENED   {e['reason']}")
    for e in run.cleared:
        print(f"  CLEARED  {e['product_id']!r} at {e['cleared_at']:%Y-%m-%d %H:%M} UTC")
    print(f"{run.open_now} sentiment drop(s) open (ops_alerts, kind sentiment_drop)")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("sentiment", help="review sentiment per product and hour, and drop alerts (event time)")
    actions = p.add_subparsers(dest="sentiment_command", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="score new reviews, roll up and decide every closed hour once")
    run.add_argument("--until", type=until_time, default=None,
                     help="decide up to this time (ISO, UTC if no zone), at most the closed event time "
                          "`txnmon events` computes (the default)")
    run.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    run.set_defaults(func=cmd_sentiment_run)
