"""`txnmon abandonment run [--until ISO]`: the cart-abandonment walk once, by hand (docs/events.md)."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from txnmon.cli.base import until_time
from txnmon.settings import Settings

# without --until: this far behind the older of the processor's watermark and the newest stored cart
# event, the default lateness of the `txnmon events` service (EVENTS_LATENESS_SECONDS)
DEFAULT_LATENESS = dt.timedelta(seconds=300)


def default_until(store: Any) -> dt.datetime | None:
    """The older of the processor's watermark and the newest stored cart event, minus DEFAULT_LATENESS."""
    from txnmon.core.collection_names import CART_EVENTS
    from txnmon.jobs.rollups import processor_watermark

    mark = processor_watermark(store)
    newest = store.find(CART_EVENTS, {}, sort=[("event_time", -1)], limit=1, projection={"event_time": 1})
    if mark is None or not newest:
        return None
    return min(mark, newest[0]["event_time"]) - DEFAULT_LATENESS


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from txnmon.adapters.mongo import MongoStore
    from txnmon.jobs import abandonment

    store = MongoStore(settings)
    until = args.until or default_until(store)
    if until is None:
        print("no closed event time yet: the processor has no watermark or no cart event is stored "
              "(give --until)")
        return 0
    run = abandonment.run_abandonment(store, settings, closed_until=until, trigger="cli")
    if args.json:
        print(json.dumps(abandonment.summary(run), indent=2))
        return 0
    print(f"carts decided up to {run.closed_until:%Y-%m-%d %H:%M:%S} UTC (event time): {run.decided:,} decided this "
          f"run, {run.abandoned:,} abandoned, {run.recoveries:,} recovery decision(s), "
          f"{len(run.interventions)} intervention(s)")
    for i in run.interventions:
        print(f"  INTERVENTION {i}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("abandonment", help="cart abandonment: abandoned carts, recoveries, interventions, "
                                           "hourly KPIs (in event time)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = actions.add_parser("run", help="decide every cart whose deadline is before --until, once")
    r.add_argument("--until", type=until_time, default=None,
                   help="closed event time (ISO, UTC if no zone); default: the older of the processor's "
                        "watermark and the newest cart event, minus 5 minutes")
    r.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    r.set_defaults(func=cmd_run)
