"""Customer KPIs from the rollup pass: new vs returning customers, repeat-purchase rate, order value per
segment, top customers, per event-time hour.

The rollup cube (src/txnmon/core/rollups.py) collects, for every successful purchase, (hour, user) ->
[orders, revenue in exact units]. Whether a buyer is *new* in an hour needs one durable fact per
customer: the hour of their first purchase. It lives in `customer_firsts`, packed into SHARDS
documents by a hash of the user id (a full rebuild writes a few hundred documents, not one per
customer), maintained idempotently: a run takes min(stored, seen in the recomputed hours), so
re-running a run changes nothing.

A late first purchase (an hour earlier than the stored one) makes the customer *returning* in the
hour they were counted new in; `moved_firsts()` names those hours so the job queues them for the
next run (a `touched_hours` entry), which recomputes them from the data.
"""

from __future__ import annotations

import datetime as dt
import heapq
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

SHARDS = 256
TOP_CUSTOMERS = 10  # per hour, in kpi_customers_hour.top
_UNITS = 1 << 1074  # the rollups' exact-sum unit (2**-1074)


def shard_of(user: str) -> str:
    """The `customer_firsts` document holding `user`: stable across processes (crc32, not hash())."""
    return f"{zlib.crc32(user.encode('utf-8', 'surrogatepass')) % SHARDS:03d}"


def firsts_from_documents(docs: Iterable[Mapping[str, Any]]) -> dict[str, dt.datetime]:
    """user -> first purchase hour, from `customer_firsts` documents."""
    out: dict[str, dt.datetime] = {}
    for d in docs:
        for user, first in d.get("firsts", []):
            out[user] = first if first.tzinfo else first.replace(tzinfo=dt.UTC)
    return out


def first_hours(buyers: Mapping[tuple[dt.datetime, str], list[int]]) -> dict[str, dt.datetime]:
    """user -> the earliest hour they bought in, among the cube's hours."""
    out: dict[str, dt.datetime] = {}
    for hour, user in buyers:
        seen = out.get(user)
        if seen is None or hour < seen:
            out[user] = hour
    return out


def merged_firsts(stored: Mapping[str, dt.datetime], seen: Mapping[str, dt.datetime],
                  full_rebuild: bool) -> dict[str, dt.datetime]:
    """The first purchase hours after this run: a full rebuild's are exactly what it saw."""
    if full_rebuild:
        return dict(seen)
    out = dict(stored)
    for user, hour in seen.items():
        if user not in out or hour < out[user]:
            out[user] = hour
    return out


def moved_firsts(stored: Mapping[str, dt.datetime], merged: Mapping[str, dt.datetime],
                 recomputed: set[dt.datetime]) -> set[dt.datetime]:
    """Hours, outside the recomputed ones, that counted a customer as new whose first purchase is now earlier."""
    return {old for user, old in stored.items() if merged.get(user, old) < old and old not in recomputed}


def firsts_documents(firsts: Mapping[str, dt.datetime], shards: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """`customer_firsts` documents (only the given shards, or all that have customers), entries sorted."""
    grouped: dict[str, list[list[Any]]] = {}
    for user, hour in firsts.items():
        grouped.setdefault(shard_of(user), []).append([user, hour])
    wanted = set(grouped) if shards is None else set(shards)
    return [{"_id": s, "customers": len(grouped.get(s, [])), "firsts": sorted(grouped.get(s, []))}
            for s in sorted(wanted)]


def hour_documents(buyers: Mapping[tuple[dt.datetime, str], list[int]],
                   firsts: Mapping[str, dt.datetime], id_of: Any) -> list[dict[str, Any]]:
    """kpi_customers_hour: one document per hour with purchases. `id_of(hour)` gives its `_id`."""
    # per hour: [customers, new, new orders, returning orders, new units, returning units], and its buyers
    totals: dict[dt.datetime, list[int]] = {}
    rows_of: dict[dt.datetime, list[tuple[int, str, int]]] = {}
    for (hour, user), (orders, units) in buyers.items():
        t = totals.get(hour)
        if t is None:
            t = totals[hour] = [0, 0, 0, 0, 0, 0]
            rows_of[hour] = []
        t[0] += 1
        if firsts.get(user) == hour:
            t[1] += 1
            t[2] += orders
            t[4] += units
        else:
            t[3] += orders
            t[5] += units
        rows_of[hour].append((units, user, orders))
    docs = []
    for hour, (n, n_new, n_orders, r_orders, n_units, r_units) in totals.items():
        # the hour's top customers: most revenue first, then user id (nlargest on (-units) ties by user)
        top = heapq.nsmallest(TOP_CUSTOMERS, rows_of[hour], key=lambda r: (-r[0], r[1]))
        docs.append({
            "_id": id_of(hour), "hour": hour,
            "customers": n, "new_customers": n_new, "returning_customers": n - n_new,
            "repeat_purchase_rate": (n - n_new) / n,
            "orders": n_orders + r_orders, "new_orders": n_orders, "returning_orders": r_orders,
            "revenue": (n_units + r_units) / _UNITS, "new_revenue": n_units / _UNITS,
            "returning_revenue": r_units / _UNITS,
            "avg_order_value": (n_units + r_units) / (_UNITS * (n_orders + r_orders)),
            "avg_order_value_new": n_units / (_UNITS * n_orders) if n_orders else None,
            "avg_order_value_returning": r_units / (_UNITS * r_orders) if r_orders else None,
            "top": [{"user_id": u, "orders": o, "revenue": x / _UNITS} for x, u, o in top],
        })
    return docs
