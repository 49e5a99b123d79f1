"""The HTTP front door's commands: `txnmon serve`, and `txnmon keys create|list|revoke` for its API keys."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from txnmon.settings import Settings


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    # FastAPI, Uvicorn and the clients are loaded only by this sub-command
    from txnmon.api.server import serve

    overrides = {k: v for k, v in (("api_host", args.host), ("api_port", args.port)) if v is not None}
    serve(settings.model_copy(update=overrides) if overrides else settings)
    return 0


def cmd_keys(settings: Settings, args: argparse.Namespace) -> int:
    from txnmon.adapters.mongo import MongoStore
    from txnmon.api import keys
    from txnmon.jobs import api_keys, audit

    store = MongoStore(settings)
    try:
        if args.keys_command == "create":
            scopes = args.scope or list(keys.DEFAULT_SCOPES)
            key = api_keys.create(store, args.name, by=audit.who(args.by), scopes=scopes)
            print(key)
            print(f"key {args.name!r} created with scopes {', '.join(keys.checked_scopes(scopes))}: it is shown "
                  "only this once; store it now", file=sys.stderr)
            return 0
        if args.keys_command == "revoke":
            if not api_keys.revoke(store, args.name, by=audit.who(args.by)):
                print(f"txnmon: no live key named {args.name!r}", file=sys.stderr)
                return 1
            print(f"key {args.name!r} revoked")
            return 0
        rows = api_keys.listed(store)
        if args.json:
            print(json.dumps(rows, default=str, indent=2))
        for row in [] if args.json else rows:
            state = f"revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "live"
            print(f"{row['_id']:<24} {row['key_id']}  {','.join(row['scopes']):<12} "
                  f"created {row['created_at']:%Y-%m-%d %H:%M}  {state}")
        return 0
    finally:
        store.close()


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="the HTTP API: POST /v1/transactions, /healthz, /readyz, docs at /docs")
    p.add_argument("--host", default=None, help="address to bind (default: API_HOST, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: API_PORT, 8088)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("keys", help="API keys of `txnmon serve`: create (shown once), list, revoke")
    ks = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    q = ks.add_parser("create", help="make a key and print it once (only its salted hash is stored)")
    q.add_argument("name")
    q.add_argument("--scope", action="append", default=None, metavar="ingest|read",
                   help="what the key may do: ingest (POST /v1/transactions, /v1/decisions) or read (GET "
                        "/v1/decisions|alerts|cases/{id}); repeat or comma-separate (default: ingest)")
    q.add_argument("--by", default=None, help="who (audit trail; default: your login)")
    q = ks.add_parser("list", help="every key: name, key id, scopes, created, revoked")
    q.add_argument("--json", action="store_true")
    q = ks.add_parser("revoke", help="revoke a key (the service refuses it within API_KEY_CACHE_SECONDS)")
    q.add_argument("name")
    q.add_argument("--by", default=None, help="who (audit trail; default: your login)")
    p.set_defaults(func=cmd_keys)
