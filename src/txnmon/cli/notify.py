"""`txnmon notify`: deliver the notifications outbox; list and re-send the dead letters.

    txnmon notify                      run the worker until SIGTERM/SIGINT (several may run at once)
    txnmon notify --list-dead          the dead-lettered notifications, newest first
    txnmon notify resend ID [ID ...]   dead ones back to the queue (attempts from zero)
    txnmon notify resend --all-dead
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from txnmon.errors import UsageError
from txnmon.settings import Settings


def cmd_notify(settings: Settings, args: argparse.Namespace) -> int:
    from txnmon.adapters.mongo import MongoStore
    from txnmon.notifications import outbox

    if args.list_dead:
        entries = outbox.dead_entries(MongoStore(settings), limit=args.limit)
        print(json.dumps(entries, indent=2, default=str) if args.json else outbox.render_dead(entries))
        if len(entries) == args.limit and not args.json:
            print(f"(the newest {args.limit} shown: --limit N for more; `txnmon status` counts them all)")
        return 0
    from txnmon.notifications.metrics import NotifyMetrics

    metrics = NotifyMetrics()
    metrics.serve(settings.notify_metrics_port, settings.metrics_address)
    from txnmon.notifications.worker import run_worker

    return run_worker(settings, max_idle_s=args.exit_when_idle, observe=metrics.observe)


def cmd_resend(settings: Settings, args: argparse.Namespace) -> int:
    from txnmon.adapters.mongo import MongoStore
    from txnmon.notifications import outbox

    if bool(args.ids) == bool(args.all_dead):
        raise UsageError("give notification ids or --all-dead (not both)")
    requeued = outbox.resend(MongoStore(settings), args.ids, all_dead=args.all_dead, by=args.by)
    missing = sorted(set(args.ids) - set(requeued))
    print(f"{len(requeued)} notification(s) queued again")
    for entry_id in missing:
        print(f"  not dead-lettered (unknown, pending or already sent): {entry_id}")
    return 1 if missing else 0


def register(sub: Any) -> None:
    from txnmon.cli.base import positive_float, positive_int

    p = sub.add_parser("notify", help="deliver queued notifications (webhook, chat, mail); --list-dead; resend")
    p.add_argument("--exit-when-idle", type=positive_float, default=None, metavar="SECONDS",
                   help="exit 0 after this many seconds with nothing due (for batch runs and tests)")
    p.add_argument("--list-dead", action="store_true", help="list the dead-lettered notifications and exit")
    p.add_argument("--limit", type=positive_int, default=100, help="with --list-dead: at most this many")
    p.add_argument("--json", action="store_true", help="with --list-dead: JSON")
    p.set_defaults(func=cmd_notify)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    r = actions.add_parser("resend", help="queue dead-lettered notifications again")
    r.add_argument("ids", nargs="*", metavar="ID", help="notification ids (`txnmon notify --list-dead`)")
    r.add_argument("--all-dead", action="store_true", help="every dead-lettered notification")
    r.add_argument("--by", default=None, help="who re-sends (audit trail; default: your login)")
    r.set_defaults(func=cmd_resend)
