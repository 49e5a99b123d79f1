"""Commands that put data in: replay (a CSV, or a window of the raw topic's history) and generate."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path
from typing import Any

from txnmon.cli.progress import Progress
from txnmon.errors import UsageError
from txnmon.settings import SAMPLE_CSV, Settings

# the kinds `txnmon replay --kind` takes (txnmon.core.event_contracts.EVENT_KINDS, kept light to import here)
EVENT_KIND_NAMES = ("transactions", "carts", "stock", "reviews")


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from txnmon.jobs import replay

    if args.window_from or args.window_to:
        if not (args.window_from and args.window_to):
            raise UsageError("--from and --to go together")
        done = replay.run_window(settings, args.window_from, args.window_to, notify=args.notify)
        print(f"re-ran {done.messages:,} messages from {settings.topic_by_user}: {done.new_transactions:,} new "
              f"transactions, {done.already_stored:,} already stored, {done.rejected:,} rejected, "
              f"{done.alerts:,} alerts (in their users' cases; new ones "
              f"{'routed to the notifications outbox' if args.notify else 'not notified (--no-notify)'}; "
              "the live consumer group's offsets are untouched)")
        return 0
    if not args.notify:
        raise UsageError("--no-notify goes with --from/--to (a file's rows are judged by the processor)")
    with Progress("replay", "rows") as progress:
        summary = replay.replay_csv(settings, Path(args.file), speedup=args.speedup, limit=args.limit,
                                    topic=args.topic, progress=progress, kind=args.kind)
    print(replay.render_summary(summary))
    return 0


def cmd_generate(settings: Settings, args: argparse.Namespace) -> int:
    from txnmon.synthetic import business_events, generator
    from txnmon.synthetic import events as other_events

    kinds = other_events.parse_event_kinds(args.events) if args.events else []
    shares = generator.parse_behaviour_shares(args.behaviour)
    spec = generator.GeneratorSpec(rows=args.rows, users=args.users, fraud_rate=args.fraud_rate, seed=args.seed,
                                   start=args.start, days=args.days, max_delay_s=args.max_delay, **shares)
    spec.validate()
    events = [business_events.parse_event(kind, text, spec.start) for kind, text in
              (("gateway_outage", args.outage), ("product_spike", args.product_spike),
               ("new_region", args.new_region)) if text]
    started = time.perf_counter()
    with Progress("generate", "rows") as progress:
        progress("generating", 0, spec.rows)  # one vectorised step: the bar jumps to the end
        df = generator.generate(spec)
        if events:
            df = business_events.inject(df, events, spec.seed)
        progress("generating", spec.rows, spec.rows)
        generator.write_csv(df, Path(args.out), lambda done, total: progress("writing", done, total))
    labelled = df[df["fraud_label"] != ""]
    print(f"wrote {len(df):,} rows ({len(labelled):,} fraud rows in {labelled['fraud_incident'].nunique():,} "
          f"incidents) for {df['user_id'].nunique():,} users to {args.out} in {time.perf_counter() - started:.1f}s")
    for event in events:
        print(f"  {event.kind}: {event.name} from {event.start:%Y-%m-%d %H:%M} UTC for {event.minutes} min "
              f"({(df['business_event'] == event.kind).sum():,} rows)")
    if kinds:
        folder = Path(args.events_dir) if args.events_dir else Path(args.out).parent
        frames = other_events.generate_events(df, spec, kinds)
        for kind, path in other_events.write_events(frames, folder).items():
            labels = ", ".join(f"{n:,} {label}" for label, n in frames[kind]["label"].value_counts().items())
            print(f"  {kind}: {len(frames[kind]):,} events ({labels}) to {path}")
    return 0


def register(sub: Any) -> None:
    from txnmon.cli.base import positive_float, positive_int, since, to_date

    p = sub.add_parser("replay", help="validate a CSV file and produce its rows to its kind's topic (TOPIC_RAW for "
                                      "transactions)")
    p.add_argument("file", nargs="?", default=str(SAMPLE_CSV), help="CSV file (default: the seed sample)")
    p.add_argument("--kind", choices=EVENT_KIND_NAMES, default="transactions",
                   help="what the file holds, judged by that kind's contract and sent to its topic: transactions "
                        "(TOPIC_RAW), carts (TOPIC_CARTS), stock (TOPIC_INVENTORY), reviews (TOPIC_REVIEWS); "
                        "docs/events.md")
    p.add_argument("--speedup", type=positive_float, default=0.0,
                   help="event-time pacing: 60 = one hour of data per minute, 0 = as fast as possible")
    p.add_argument("--limit", type=positive_int, default=None, help="send at most this many rows")
    p.add_argument("--topic", default=None, help="target topic (default: the kind's topic)")
    p.add_argument("--from", dest="window_from", type=since, default=None,
                   help="instead of a file: re-run TOPIC_RAW messages that arrived from this time (ISO or 24h)")
    p.add_argument("--to", dest="window_to", type=since, default=None, help="... until this time (ISO or 1h)")
    p.add_argument("--no-notify", dest="notify", action="store_false",
                   help="with --from/--to: new alerts go to cases but not to the notifications outbox "
                        "(a backfill with new rules)")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("generate", help="write a synthetic, labelled transactions CSV")
    p.add_argument("--rows", type=positive_int, required=True)
    p.add_argument("--users", type=positive_int, required=True)
    p.add_argument("--fraud-rate", type=positive_float, default=0.01, help="share of rows that are fraud (0-0.5)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--start", type=to_date, default=dt.date(2025, 10, 1), help="first day, YYYY-MM-DD")
    p.add_argument("--days", type=positive_int, default=1)
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--behaviour", metavar="NAME=SHARE", action="append", default=[],
                   help="a clean behaviour's share, repeatable: traveller (of users; default 0.08), "
                        "multi_item_checkout (of rows; 0.05), declined_retry (0.02), payday (0.04), "
                        "sales_spike (0.05), late_arrival (0.03); 0 turns one off, all=0 every one")
    p.add_argument("--max-delay", type=positive_int, default=600, metavar="SECONDS",
                   help="a late_arrival row reaches the file up to this long after its event time (>= 60)")
    p.add_argument("--outage", metavar="METHOD@HH:MM/MIN", default=None,
                   help="a payment-gateway outage on the first day, e.g. UPI@12:00/30 (most of its payments fail)")
    p.add_argument("--product-spike", metavar="PRODUCT@HH:MM/MIN", default=None,
                   help='extra purchases of a product on the first day, e.g. "Air Fryer@14:00/60"')
    p.add_argument("--new-region", metavar="CITY@HH:MM/MIN", default=None,
                   help="purchases from a city with no sales before, e.g. Bhopal@17:00/60")
    p.add_argument("--events", metavar="KINDS", default=None,
                   help="also write the day's other events, drawn from its transactions (which stay the same): "
                        "carts, stock, reviews, comma-separated, or all (docs/events.md)")
    p.add_argument("--events-dir", metavar="DIR", default=None,
                   help="folder for carts.csv, stock.csv, reviews.csv (default: the folder of --out)")
    p.set_defaults(func=cmd_generate)
