"""The checks a pipeline owner expects beyond column rules: freshness, volume, reconciliation, rollup
consistency and DLQ rate. Pure functions over numbers and documents the quality job gathered; the
result is one row of metrics that the `pipeline` suite (src/txnmon/data/quality/suites.yaml) judges with
Great Expectations, so they land in the same Data Docs and `quality_reports` as the column suites.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PIPELINE_COLUMNS = ("newest_event_age_s", "newest_processed_age_s", "volume", "volume_baseline", "volume_ratio",
                    "raw_messages", "unaccounted_messages", "unprocessed_messages", "duplicate_messages",
                    "rollup_hours_checked", "rollup_mismatched_hours", "rejected", "dlq_rate")
REVENUE_TOLERANCE = 0.005  # half a paisa: KPI revenue is an exactly rounded sum, a float sum may differ by less


def age_s(newest: dt.datetime | None, now: dt.datetime) -> float | None:
    """Seconds from the newest stored time to `now` (None: nothing stored)."""
    if newest is None:
        return None
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=dt.UTC)
    return round((now - newest).total_seconds(), 3)


def volume_ratio(current: int, baseline_counts: Sequence[int]) -> tuple[float | None, float | None]:
    """The interval's count against the median of the same interval on earlier days that had data.

    (None, None) without a baseline: a new deployment has nothing to compare with, and says so.
    """
    seen = [c for c in baseline_counts if c > 0]
    if not seen:
        return None, None
    baseline = float(statistics.median(seen))
    return baseline, round(current / baseline, 4)


@dataclass
class PartitionReconciliation:
    partition: int
    first_offset: int
    end_offset: int  # exclusive
    processed_to: int  # the group's committed offset: below it every message should be accounted for
    stored: int = 0
    rejected: int = 0
    duplicates: int = 0
    unaccounted: list[int] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return self.end_offset - self.first_offset

    @property
    def checked_end(self) -> int:
        return max(self.first_offset, min(self.end_offset, self.processed_to))

    @property
    def unprocessed(self) -> int:
        return self.end_offset - self.checked_end

    def as_dict(self) -> dict[str, Any]:
        return {"partition": self.partition, "offsets": [self.first_offset, self.end_offset],
                "messages": self.messages, "stored": self.stored, "rejected": self.rejected,
                "duplicates": self.duplicates, "unaccounted": len(self.unaccounted),
                "unaccounted_offsets": self.unaccounted[:20], "unprocessed": self.unprocessed}


def missing_offsets(p: PartitionReconciliation, stored: Iterable[int], rejected: Iterable[int]) -> list[int]:
    """Offsets below the group's committed offset that neither a transaction nor a DLQ record came from;
    fills in the partition's stored and rejected counts."""
    window = range(p.first_offset, p.checked_end)
    stored_set = {o for o in stored if o in window}
    rejected_set = {o for o in rejected if o in window} - stored_set
    p.stored, p.rejected = len(stored_set), len(rejected_set)
    return [o for o in window if o not in stored_set and o not in rejected_set]


def settle_missing(p: PartitionReconciliation, missing: Sequence[int], transaction_ids: Mapping[int, str | None],
                   stored_ids: set[str]) -> None:
    """A missing offset whose message is an identical copy of a stored transaction (a re-sent file) is a
    duplicate the processor rightly stored once; the rest are unaccounted for."""
    for offset in missing:
        tid = transaction_ids.get(offset)
        if tid is not None and tid in stored_ids:
            p.duplicates += 1
        else:
            p.unaccounted.append(offset)


def hour_totals(transactions: Iterable[Mapping[str, Any]]) -> tuple[int, float]:
    """What kpi_revenue_minute must add up to for these transactions, computed independently of the
    rollup code: every transaction counts, revenue is the amount of those neither failed nor refunds."""
    count, revenue = 0, 0.0
    for tx in transactions:
        count += 1
        amount = tx.get("amount")
        if tx.get("status") != "failed" and tx.get("type") != "refund" and isinstance(amount, int | float) \
                and math.isfinite(amount):
            revenue += float(amount)
    return count, revenue


def compare_hour(hour: str, kpi_minutes: Sequence[Mapping[str, Any]],
                 transactions: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """None when the hour's kpi_revenue_minute documents equal the sums over its stored transactions."""
    count, revenue = hour_totals(transactions)
    kpi_count = sum(int(d.get("transactions") or 0) for d in kpi_minutes)
    kpi_revenue = sum(float(d.get("revenue") or 0.0) for d in kpi_minutes)
    if kpi_count == count and abs(kpi_revenue - revenue) <= REVENUE_TOLERANCE * max(1, len(kpi_minutes)):
        return None
    return {"hour": hour, "stored_transactions": count, "kpi_transactions": kpi_count,
            "stored_revenue": round(revenue, 2), "kpi_revenue": round(kpi_revenue, 2)}


def dlq_rate(rejected: int, stored: int) -> float | None:
    total = rejected + stored
    return None if total == 0 else round(rejected / total, 6)
