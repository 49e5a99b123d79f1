"""`txnmon`: the one command for everything a user does with the pipeline.

    txnmon init                 create topics and indexes (idempotent)
    txnmon config               show the effective settings, secrets masked
    txnmon status               health verdict, group members, lag per partition, KPI freshness, DLQ growth
    txnmon replay FILE          validate a CSV and produce it to TOPIC_RAW
    txnmon stream               run the streaming processor (a consumer-group member)
    txnmon generate ...         write a synthetic, labelled transactions CSV
    txnmon rollups [--full]     recompute KPI rollup collections
    txnmon signals              payment-health alerts and trending products / cities, in event time
    txnmon stock run [--until T]  stock levels, depletion alerts and stock-outs per product and city
    txnmon abandonment run      abandoned carts, recoveries, interventions, hourly KPIs (in event time)
    txnmon quality              data-quality suites over recent data (HTML report + summary)
    txnmon backtest --data F    rules over history: alerts, recall/precision, changes vs a baseline
    txnmon dlq list|redrive     rejected events as data; send them through again after a fix
    txnmon alerts mark|quality|show  triage alerts; per-rule precision; one alert and why it fired
    txnmon cases list|show|assign|note|close   a user's alerts grouped into cases
    txnmon lists add|remove|show  named lists; trusted_users silences a rule for a user
    txnmon audit                the append-only audit trail
    txnmon notify [--list-dead] deliver alerts to webhooks, chat and mail; `notify resend ID|--all-dead`
    txnmon serve                the HTTP API: POST /v1/transactions, /healthz, /readyz (docs/api.md)
    txnmon keys create|list|revoke  API keys of `txnmon serve` (a key is shown once, stored hashed)
    txnmon models train|list|show|promote|demote|drift  the learned risk score (docs/model.md)
    txnmon sentiment run [--until T]  review sentiment per product and hour, drop alerts (docs/events.md)

One module per group of commands (service, data, batch, abandonment, analyst, desk, notify, api, models,
sentiment), each with a `register`;
src/txnmon/cli/base.py maps every `TxnmonError` to its message and exit code in one place.
Exit codes: 0 ok, 1 runtime failure (a service down, a rejected file), 2 bad arguments or config.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from txnmon.cli import abandonment, analyst, api, base, batch, data, desk, models, notify, sentiment, service

GROUPS = (service, data, batch, abandonment, analyst, desk, notify, api, models, sentiment)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="txnmon", description="Real-time e-commerce transaction monitoring.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return base.run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
