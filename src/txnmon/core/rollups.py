"""KPI rollups: the touched transactions read once, every kpi_* collection derived from that one read.

A run reads the transactions of the event-time hours it recomputes in ONE `find` (the filter is
`source_query()`, the fields `TX_FIELDS`) and folds each document into a `TxCube`
(src/txnmon/core/rollup_cube.py): per-minute totals plus per-hour cells over every dimension the
hourly rollups share (`CUBE_DIMS`). Each kpi_* collection's documents are then derived from the
cube (`TxCube.rows(rollup)`), so adding a rollup over those dimensions costs no further pass. Live
alerts fold into an `AlertCube` the same way (one read of `alerts`). `plan_writes()` turns new and
stored documents into the writes that make the stored ones equal to the new ones. This module is
the catalog (`ROLLUPS`), the reads, the `_id`s and the write plans. All pure: tests run it without a
server; the I/O is in src/txnmon/jobs/rollups.py, the catalog for BI users in docs/rollups.md.

Keys: `_id` is text, the bucket and then the keys in the order of `Rollup.keys`, joined by "|",
each key percent-escaped first ("%" -> "%25", "|" -> "%7C"): `2025-09-30T10|Mumbai`,
`2025-09-30T10|a%7Cb|c`. The escaping makes the `_id` injective, so ("a|b", "c") and ("a", "b|c")
no longer share one; values without "|" or "%" keep the `_id` they always had. (Compound `_id`
documents were the first choice, but the local MongoDB-wire server, mongo-java-server 1.47 with
H2, fails to find documents by a multi-field `_id` document in updates and deletes once a
collection holds a few hundred: replaces collide with the stored document, deletes miss most.
Text `_id`s behave the same on every server.) Missing or null keys become "(none)".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from txnmon.core.collection_names import ALERTS, TRANSACTIONS

HOUR_FMT = "%Y-%m-%dT%H"
MINUTE_FMT = "%Y-%m-%dT%H:%M"
NONE_KEY = "(none)"
HOUR = dt.timedelta(hours=1)
SIGNAL_BUCKET_MINUTES = 5  # the event-time grain of kpi_signals_5min, what business signals are decided on

# The dimensions of the hourly cube: every hourly transaction rollup groups by a subset of them.
CUBE_DIMS = ("location", "product", "category", "payment_method", "value_category")
# What one pass reads of each transaction / alert (nothing else crosses the wire).
TX_FIELDS = ("event_time", "amount", "status", "type", "alert_flag", "late", "user_id", *CUBE_DIMS)
ALERT_FIELDS = ("event_time", "amount", "rule", "severity", "user_id", "mode")

# Measures of the transaction rollups. Revenue counts successful purchases only: failed payments
# took no money and refunds gave it back (they are summed apart).
TX_MEASURES = ("transactions", "revenue", "sales", "avg_amount", "alerted_transactions", "failed_payments",
               "refunds", "refund_amount", "late_transactions")
ALERT_MEASURES = ("alerts", "amount", "users")


@dataclass(frozen=True)
class Rollup:
    """One kpi_* collection: its source, time grain ("minute" | "hour") and the keys it groups by."""

    collection: str
    source: str
    grain: str
    keys: tuple[str, ...]
    description: str


ROLLUPS: tuple[Rollup, ...] = (
    Rollup("kpi_revenue_minute", TRANSACTIONS, "minute", (),
           "revenue and transaction count per minute, with average amount and alerted transactions"),
    Rollup("kpi_location_hour", TRANSACTIONS, "hour", ("location",), "revenue per location (city) per hour"),
    Rollup("kpi_product_hour", TRANSACTIONS, "hour", ("product", "category"),
           "revenue per product and category per hour"),
    Rollup("kpi_payment_hour", TRANSACTIONS, "hour", ("payment_method",), "revenue per payment method per hour"),
    Rollup("kpi_value_category_hour", TRANSACTIONS, "hour", ("value_category",),
           "revenue per value category (Low / Medium / High) per hour"),
    Rollup("kpi_alerts_hour", ALERTS, "hour", ("rule", "severity"),
           "live alerts per rule and severity per hour (shadow alerts excluded)"),
    Rollup("kpi_signals_5min", TRANSACTIONS, "5min", (),
           "per 5 event-time minutes: payment outcomes per method, sales per product and per city "
           "(what src/txnmon/core/business_signals.py decides payment-health alerts and trends on)"),
)
# the date field of each grain (the `_id` starts with it too)
GRAIN_FIELD = {"minute": "minute", "hour": "hour", "5min": "bucket"}
ROLLUP_NAMES = tuple(r.collection for r in ROLLUPS)


def hour_start(hour: str) -> dt.datetime:
    return dt.datetime.strptime(hour, HOUR_FMT).replace(tzinfo=dt.UTC)


def valid_hours(hours: Iterable[Any]) -> tuple[list[str], list[Any]]:
    """The distinct well-formed hours, sorted, and whatever else was given (to log, never to crash on)."""
    good, bad = set(), []
    for h in hours:
        try:
            hour_start(h)
        except (TypeError, ValueError):
            bad.append(h)
        else:
            good.add(h)
    return sorted(good), bad


def hour_ranges(hours: Iterable[str]) -> list[tuple[dt.datetime, dt.datetime]]:
    """The hours as [start, end) ranges, adjacent hours merged: what an index range scan reads."""
    ranges: list[tuple[dt.datetime, dt.datetime]] = []
    for start in sorted({hour_start(h) for h in hours}):
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], start + HOUR)
        else:
            ranges.append((start, start + HOUR))
    return ranges


def time_query(field_name: str, hours: Sequence[str] | None) -> dict[str, Any]:
    """Documents whose `field_name` falls in one of the hours (None: every document).

    Ranges on one field, so MongoDB serves each from the field's index and an incremental run
    reads only the touched hours, however far apart they are.
    """
    if hours is None:
        return {}
    ranges = hour_ranges(hours)
    clauses = [{field_name: {"$gte": start, "$lt": end}} for start, end in ranges]
    if not clauses:
        return {field_name: {"$in": []}}  # nothing
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def source_query(rollup_source: str, hours: Sequence[str] | None) -> dict[str, Any]:
    """The one read of a run over `transactions` or `alerts`."""
    query = time_query("event_time", hours)
    if rollup_source == ALERTS:
        query = {"mode": {"$ne": "shadow"}, **query}
    return query


def projection(fields: Iterable[str]) -> dict[str, int]:
    return {"_id": 0, **{f: 1 for f in fields}}


# --- ids ---------------------------------------------------------------------------------------


def escape_part(value: Any) -> str:
    """A key as one `_id` part: "%" and "|" percent-escaped, so "|" only ever separates parts."""
    text = value if isinstance(value, str) else str(value)
    return text.replace("%", "%25").replace("|", "%7C")


def rollup_id(rollup: Rollup, key: Sequence[Any]) -> str:
    """The `_id` of a bucket: its start (MINUTE_FMT / HOUR_FMT), then each key escaped, joined by "|"."""
    if len(key) != 1 + len(rollup.keys):
        raise ValueError(f"{rollup.collection}: expected a bucket and {len(rollup.keys)} key(s), got {key!r}")
    bucket = key[0].strftime(HOUR_FMT if rollup.grain == "hour" else MINUTE_FMT)
    return "|".join([bucket, *(escape_part(v) for v in key[1:])])


def split_id(_id: str) -> list[str]:
    """The parts of an `_id` (what BI tools do: split on "|", then URL-decode each part)."""
    return [p.replace("%7C", "|").replace("%25", "%") for p in _id.split("|")]


# --- writes ------------------------------------------------------------------------------------


def id_key(value: Any) -> Any:
    """A hashable stand-in for an `_id` with MongoDB's equality: documents compare field by field, in order."""
    if isinstance(value, Mapping):
        return ("{}", tuple((k, id_key(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("[]", tuple(id_key(v) for v in value))
    return value


def plan_writes(new: Iterable[Mapping[str, Any]], stored: Iterable[Mapping[str, Any]]
                ) -> tuple[list[Mapping[str, Any]], list[Any]]:
    """What makes the stored documents of the recomputed buckets equal to `new`: the documents to
    write (new or changed; equal ones are skipped) and the `_id`s to delete (buckets that are gone,
    or documents of an older `_id` shape)."""
    existing = {id_key(d["_id"]): d for d in stored}
    writes = [d for d in new if existing.pop(id_key(d["_id"]), None) != d]
    return writes, [d["_id"] for d in existing.values()]
