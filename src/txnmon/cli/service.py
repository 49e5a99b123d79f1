"""Commands that set up, inspect and run the pipeline: init, config, status, stream, events."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from txnmon.settings import Settings


def cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    from txnmon.adapters import kafka
    from txnmon.adapters.mongo import MongoStore
    from txnmon.core.topology import partition_problems
    from txnmon.errors import PartitionLayoutError

    created = kafka.ensure_topics(settings, settings.init_topics)
    counts = {}
    for info in kafka.describe_topics(settings, list(settings.init_topics)):
        state = "created" if info.name in created else "exists"
        print(f"topic {info.name}: {info.partitions} partitions ({state})")
        counts[info.name] = info.partitions
    MongoStore(settings).ensure_indexes()
    print(f"mongodb {settings.mongo_db}: indexes ensured")
    errors, warnings = partition_problems(counts, by_user=settings.topic_by_user, state=settings.topic_state,
                                          wanted=settings.topic_partitions)
    for warning in warnings:
        print(f"txnmon: warning: {warning}", file=sys.stderr)
    if errors:
        raise PartitionLayoutError("; ".join(errors))
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
    from txnmon.jobs import status

    report = status.collect(settings, interval_s=args.sample)
    print(json.dumps(report, indent=2, default=str) if args.json else status.render(report))
    return 0 if report["healthy"] else 1


def cmd_stream(settings: Settings, args: argparse.Namespace) -> int:
    # The processor wires Kafka, rules and MongoDB together; loaded only by this sub-command.
    from txnmon.services.processor import run_processor

    return run_processor(settings, max_idle_s=args.exit_when_idle, group_id=args.group)


def cmd_events(settings: Settings, args: argparse.Namespace) -> int:
    from txnmon.services.events import run_events

    return run_events(settings, max_idle_s=args.exit_when_idle, group_id=args.group)


def register(sub: Any) -> None:
    from txnmon.cli.base import positive_float

    p = sub.add_parser("init", help="create Kafka topics and MongoDB indexes (idempotent)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("config", help="show the effective configuration (secrets masked)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("status", help="health verdict (exit 1 when unhealthy), group members, lag per partition, "
                                      "KPI freshness, DLQ growth")
    p.add_argument("--json", action="store_true")
    p.add_argument("--sample", type=positive_float, default=2.0, metavar="SECONDS",
                   help="look at Kafka twice this far apart to see lag and DLQ growth (0: once)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("stream", help="run the streaming processor until SIGTERM/SIGINT")
    p.add_argument("--group", default=None, help="consumer group (default: CONSUMER_GROUP)")
    p.add_argument("--exit-when-idle", type=positive_float, default=None, metavar="SECONDS",
                   help="exit 0 after this many seconds without messages, counted once the broker has "
                        "answered a fetch for every assigned partition (for batch runs and tests)")
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser("events", help="run the cart, stock and review events service until SIGTERM/SIGINT "
                                      "(docs/events.md)")
    p.add_argument("--group", default=None, help="consumer group (default: EVENTS_GROUP)")
    p.add_argument("--exit-when-idle", type=positive_float, default=None, metavar="SECONDS",
                   help="exit 0 after this many seconds without messages (the analyses run once more with "
                        "everything seen closed), for batch runs and tests")
    p.set_defaults(func=cmd_events)
