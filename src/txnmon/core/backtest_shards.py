"""A backtest split by user, and its parts merged back into what one run over all of them finds.

The rules judge each user's transactions against that user's own history only (src/txnmon/core/rules/state.py),
and the risk model's features read the same history (src/txnmon/core/features.py), so users can be judged
apart: each share of them in its own `Detector`, in the file's arrival order, as the processor's partitions
judge them. `merge` then gives what one `backtest.judge` over every transaction gives (a unit test holds
them to it). Pure: the processes that run the shares are src/txnmon/jobs/backtest_workers.py's.

Two things a single run has that shares do not, so a file with either is not split (`splittable`):
- a `Detector` outside the processor keeps at most the rules file's `state.max_users` users and forgets the
  least recently seen beyond that, and which user that is depends on every user's arrivals;
- a transaction id under two users (a conflicting re-send, which the processor refuses as a conflict) is
  scored once per chunk of a single run, by id, and once in each user's share.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from txnmon.core.backtest import BacktestResult, Judged, outranks


def shares_by_user(transactions: Sequence[dict[str, Any]], n: int) -> list[list[dict[str, Any]]]:
    """`transactions` in `n` shares, each user's all in one, in their order (a user always lands in the
    same share: a CRC of the id, as Kafka's partitioner places keys); empty shares left out."""
    shares: list[list[dict[str, Any]]] = [[] for _ in range(max(n, 1))]
    place: dict[str, int] = {}
    for tx in transactions:
        user = str(tx["user_id"])
        at = place.get(user)
        if at is None:
            at = place[user] = zlib.crc32(user.encode("utf-8", "surrogatepass")) % len(shares)
        shares[at].append(tx)
    return [share for share in shares if share]


def splittable(transactions: Sequence[dict[str, Any]], max_users: int) -> str | None:
    """None when the shares judge as one run does; otherwise why not (see above)."""
    user_of: dict[str, str] = {}
    for tx in transactions:
        tid, user = str(tx["transaction_id"]), str(tx["user_id"])
        if user_of.setdefault(tid, user) != user:
            return f"transaction id {tid!r} comes with two users"
    users = len(set(user_of.values()))
    if users > max_users:
        return f"{users:,} users, more than the rules' state.max_users ({max_users:,}) keeps"
    return None


def merge(parts: Sequence[Judged], rules_version: str, model_version: str | None) -> Judged:
    """The parts' findings as one run's (for shares of a `splittable` run)."""
    out = Judged(BacktestResult(rules_version, sum(p.result.transactions for p in parts), 0,
                                model_version=model_version))
    result = out.result
    for part in parts:
        found = part.result
        for alert_id, rule in part.rule_of.items():
            if alert_id not in result.alerts:
                result.alerts.add(alert_id)
                result.alerts_by_rule[rule] += 1
                result.examples[alert_id] = found.examples[alert_id]
                out.rule_of[alert_id] = rule
        result.alerted_transactions |= found.alerted_transactions
        result.shadow_by_rule.update(found.shadow_by_rule)
        result.suppressed_by_rule.update(found.suppressed_by_rule)
        result.shadow_alerts |= found.shadow_alerts
        result.scores.update(found.scores)
        for tid, rules in part.hits_by_tx.items():
            out.hits_by_tx[tid] |= rules
        for tid, severity in part.severity_of.items():
            if outranks(severity, out.severity_of.get(tid)):
                out.severity_of[tid] = severity
    return out
