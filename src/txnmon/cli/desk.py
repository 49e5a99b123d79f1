"""The analyst's desk: `txnmon cases`, `txnmon lists` and `txnmon audit`."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from txnmon.cli.base import moment
from txnmon.core.cases import RESOLUTIONS, STATUSES, amount_at_risk, severity_of
from txnmon.settings import Settings


def until(text: str) -> dt.datetime:
    """An ISO date/time (UTC if no zone) or a duration from now: 12h, 30d."""
    return moment(text, +1, "2026-03-01, 30d")


def _age(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours * 60:.0f} min" if hours < 2 else f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def _t(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, dt.datetime) else str(value or "-")


def print_explanation(why: dict[str, Any] | None, indent: str = "  ") -> None:
    if not why:
        print(f"{indent}explanation: none stored (raised before explanations existed)")
        return
    params = ", ".join(f"{k}={v}" for k, v in why.get("params", {}).items()
                       if v is not None and k not in ("severity", "score") and not isinstance(v, dict))
    if why.get("typology"):  # weighted signals: the weights and thresholds, then each present signal
        p = why.get("params", {})
        params = ("weights " + ", ".join(f"{k}={v:g}" for k, v in p.get("signals", {}).items())
                  + "; thresholds " + ", ".join(f"{k}={v:g}" for k, v in p.get("thresholds", {}).items()))
    print(f"{indent}parameters: {params}")
    for sig in why.get("signals", []):
        settings = ", ".join(f"{k}={v}" for k, v in sig.get("params", {}).items())
        print(f"{indent}  signal {sig['signal']} (+{sig['weight']:g}): {sig['reason']} [{settings}]")
        for f in (sig.get("measured") or {}).get("top_features", []):  # the model's signal: why it scored high
            print(f"{indent}    factor {f['feature']} (+{f['contribution']:g} log-odds): {f['text']}")
    if why.get("measured"):
        print(f"{indent}measured: " + ", ".join(f"{k}={v}" for k, v in why["measured"].items()))
    if why.get("counted"):
        print(f"{indent}prior events counted: {', '.join(why['counted'])}")
    for e in why.get("entries", []):
        print(f"{indent}list entry {e['_id']}: {e['reason']} (added by {e['added_by']})")


def print_alert(view: dict[str, Any]) -> None:
    a = view["alert"]
    print(f"alert {a['_id']} ({view['collection']})")
    print(f"  user {a['user_id']}  rule {a['rule']}  severity {a['severity']}  amount {a['amount']:,.2f}"
          f"  at {_t(a['event_time'])}  rules {a.get('rules_version')}")
    print(f"  reason: {a['reason']}")
    if a.get("suppressed_by"):
        print(f"  suppressed by: {a['suppressed_by']}")
    print_explanation(a.get("explanation"))
    for tx in view["counted_transactions"]:
        print(f"    {_t(tx['event_time'])}  {tx['_id']:<20} {tx.get('amount', 0):>12,.2f}  {tx.get('location')}")
    d, c = view["disposition"], view["case"]
    print(f"  disposition: {d['disposition']} by {d['by']}" if d else "  disposition: unmarked")
    print(f"  case: {c['_id']} ({c['status']})" if c else "  case: none")


def print_case(view: dict[str, Any]) -> None:
    c = view["case"]
    print(f"case {c['_id']}")
    print(f"  user {c['user_id']}  status {c['status']}" + (f" ({c['resolution']})" if c.get("resolution") else "")
          + f"  assignee {c.get('assignee') or '-'}  severity {severity_of(c)}")
    print(f"  amount at risk {amount_at_risk(c):,.2f}  alerts {len(c.get('alert_ids', []))}  age {_age(c['age'])}"
          f"  window {_t(c['window_start'])} .. {_t(c['window_end'])}")
    print("  alerts:")
    for a in view["alerts"]:
        print(f"    {_t(a['event_time'])}  {a['_id']:<36} {a['severity']:<6} {a['reason']}")
        print_explanation(a.get("explanation"), indent="      ")
    print("  timeline:")
    for tx in view["timeline"]:
        flag = " ALERT " + ",".join(tx.get("alert_reasons") or []) if tx.get("alert_reasons") else ""
        print(f"    {_t(tx['event_time'])}  {tx['_id']:<20} {tx.get('amount', 0):>12,.2f}  {tx.get('location')}{flag}")
    print("  notes:")
    for n in c.get("notes", []):
        print(f"    {_t(n['at'])}  {n['by']}: {n['text']}")
    print("  audit:")
    for e in view["audit"]:
        print(f"    {_t(e['at'])}  {e['who']:<12} {e['action']}")


def cmd_cases(settings: Settings, args: argparse.Namespace) -> int:
    from txnmon.adapters.mongo import MongoStore
    from txnmon.jobs import cases

    store = MongoStore(settings)
    action = args.cases_command
    if action == "list":
        rows = cases.list_cases(store, status=args.status, rule=args.rule, assignee=args.assignee, limit=args.limit)
        print(f"{'case':<44} {'user':<10} {'status':<13} {'sev':<6} {'at risk':>12} {'alerts':>6} {'age':>9}  assignee")
        for r in rows:
            print(f"{r['_id']:<44} {r['user_id']:<10} {r['status']:<13} {r['severity']:<6}"
                  f" {r['amount_at_risk']:>12,.2f} {r['alerts']:>6} {_age(r['age']):>9}  {r.get('assignee') or '-'}")
        print(f"{len(rows)} case(s)")
        return 0
    if action == "show":
        print_case(cases.show_case(store, args.case_id))
        return 0
    if action == "assign":
        doc = cases.assign(store, args.case_id, args.assignee, args.by)
        print(f"{doc['_id']}: assigned to {doc['assignee']} ({doc['status']})")
    elif action == "note":
        doc = cases.note(store, args.case_id, args.text, args.by)
        print(f"{doc['_id']}: note added ({len(doc['notes'])} in all)")
    else:
        doc = cases.close(store, args.case_id, args.resolution, args.by, args.reason)
        print(f"{doc['_id']}: closed as {doc['resolution']} by {doc['closed_by']}")
    return 0


def cmd_lists(settings: Settings, args: argparse.Namespace) -> int:
    from txnmon.adapters.mongo import MongoStore
    from txnmon.jobs import lists

    store = MongoStore(settings)
    if args.lists_command == "add":
        e = lists.add_entry(store, args.list, args.value, reason=args.reason, by=args.by, expires_at=args.expires,
                            rule=args.rule, known_rules=lists.known_rule_names(settings.rules_file))
        print(f"{e['_id']}: added by {e['added_by']}" + (f", expires {_t(e['expires_at'])}" if e["expires_at"] else ""))
    elif args.lists_command == "remove":
        e = lists.remove_entry(store, args.list, args.value, rule=args.rule, by=args.by)
        print(f"{e['_id']}: removed by {e['removed_by']}")
    else:
        rows = lists.entries(store, args.list, include_inactive=args.all)
        for e in rows:
            state = "removed" if e.get("removed_at") else f"until {_t(e['expires_at'])}" if e.get("expires_at") else ""
            print(f"{e['list']:<18} {e['value']:<20} {e.get('rule') or '':<18} {e['added_by']:<10} {state:<26} "
                  f"{e['reason']}")
        print(f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")
    return 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    from txnmon.adapters.mongo import MongoStore
    from txnmon.core.audit import changed_fields
    from txnmon.jobs import audit

    for e in audit.entries(MongoStore(settings), target=args.target, action=args.action, limit=args.limit):
        changed = ", ".join(changed_fields(e.get("before"), e.get("after")))
        print(f"{_t(e['at'])}  {e['who']:<12} {e['action']:<12} {e['target']:<44} {changed}")
    return 0


def register(sub: Any) -> None:
    from txnmon.cli.base import positive_int

    p = sub.add_parser("cases", help="cases: a user's alerts grouped; list, show, assign, note, close")
    cs = p.add_subparsers(dest="cases_command", required=True, metavar="ACTION")
    q = cs.add_parser("list", help="open cases by severity, amount at risk and age")
    q.add_argument("--status", choices=STATUSES, default=None, help="default: every case not closed")
    q.add_argument("--rule", default=None)
    q.add_argument("--assignee", default=None)
    q.add_argument("--limit", type=positive_int, default=50)
    q = cs.add_parser("show", help="a case: alerts with their explanations, the user's timeline, notes, audit")
    q.add_argument("case_id")
    q = cs.add_parser("assign", help="assign a case (it becomes investigating)")
    q.add_argument("case_id")
    q.add_argument("assignee")
    q.add_argument("--by", default=None, help="analyst name (default: the login name)")
    q = cs.add_parser("note", help="add a note to a case")
    q.add_argument("case_id")
    q.add_argument("text")
    q.add_argument("--by", default=None)
    q = cs.add_parser("close", help="close with a resolution; fraud/legitimate label the alerts TP/FP")
    q.add_argument("case_id")
    q.add_argument("--as", dest="resolution", required=True, choices=RESOLUTIONS)
    q.add_argument("--reason", default="")
    q.add_argument("--by", default=None)
    p.set_defaults(func=cmd_cases)

    p = sub.add_parser("lists", help="named lists (blocked users, risky locations, trusted users)")
    ls = p.add_subparsers(dest="lists_command", required=True, metavar="ACTION")
    q = ls.add_parser("add", help="add or replace an entry (trusted_users: --rule and --expires, at most 180d)")
    q.add_argument("list")
    q.add_argument("value")
    q.add_argument("--reason", required=True, help="why (for trusted_users: the justification)")
    q.add_argument("--expires", type=until, default=None, help="ISO time or a duration from now (30d)")
    q.add_argument("--rule", default=None, help="trusted_users: the rule to silence for this user")
    q.add_argument("--by", default=None)
    q = ls.add_parser("remove", help="remove an entry (kept, marked removed)")
    q.add_argument("list")
    q.add_argument("value")
    q.add_argument("--rule", default=None)
    q.add_argument("--by", default=None)
    q = ls.add_parser("show", help="entries in force (--all: removed and expired too)")
    q.add_argument("list", nargs="?", default=None)
    q.add_argument("--all", action="store_true")
    p.set_defaults(func=cmd_lists)

    p = sub.add_parser("audit", help="the audit trail, newest first")
    p.add_argument("--target", default=None, help="one object: a case id, alert id, list entry id, rules version")
    p.add_argument("--action", default=None)
    p.add_argument("--limit", type=positive_int, default=50)
    p.set_defaults(func=cmd_audit)
