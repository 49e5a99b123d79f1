"""The case sink: a judged batch's alerts into their users' cases, idempotently.

Runs after the alerts sink (pipeline.orders). One read (the batch's users' cases that a new
alert can join or already holds) and one bulk write of upserts per batch. Case ids come from the
user and the case's first alert, so a batch written again after a crash lands in the same cases.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from txnmon.adapters.mongo import CasesRepository, MongoStore
from txnmon.core.batch import BatchResult
from txnmon.core.cases import SEVERITY_RANK, CaseChange, assign_cases, new_case_fields


def alert_positions(batch: BatchResult) -> dict[str, tuple[int, int]]:
    """Each alert's place in its user's stream: (offset of its transaction on the partition it was
    judged from, n-th alert of that transaction). Offsets give a total order per user that no crash
    or redelivery changes."""
    offset_of = {}
    for doc in batch.transactions:
        where = doc.get("judged_at") or doc.get("source") or {}
        if "offset" in where:
            offset_of[doc["_id"]] = int(where["offset"])
    out: dict[str, tuple[int, int]] = {}
    seen: dict[str, int] = {}
    for alert in batch.alerts:
        tid = alert["transaction_id"]
        if tid in offset_of:
            n = seen[tid] = seen.get(tid, -1) + 1
            out[alert["_id"]] = (offset_of[tid], n)
    return out


def case_write(change: CaseChange) -> dict[str, Any]:
    """A case change as CasesRepository.upsert takes it."""
    return {"_id": change.case_id, "on_insert": new_case_fields(change),
            "add_to_set": {"alert_ids": change.alert_ids, "exposures": change.exposures, "rules": change.rules},
            "max": {"severity_rank": SEVERITY_RANK[change.severity], "last_event_time": change.last_event_time}}


class CasesSink:
    """Alerts to cases: a new alert joins its user's open case in the window, otherwise opens one."""

    name = "mongodb"

    def __init__(self, store: MongoStore, window: dt.timedelta | None = None) -> None:
        self.store = store
        self.window = window or dt.timedelta(minutes=store.settings.case_window_minutes)

    def write(self, batch: BatchResult) -> None:
        if not batch.alerts:
            return
        earliest = min(a["event_time"] for a in batch.alerts)
        known = CasesRepository(self.store).of_users({str(a["user_id"]) for a in batch.alerts}, earliest)
        changes = assign_cases(batch.alerts, known, self.window, alert_positions(batch))
        CasesRepository(self.store).upsert([case_write(c) for c in changes])
