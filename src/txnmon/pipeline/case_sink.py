"""The case sink: a judged batch's alerts into their users' cases, idempotently.

Runs after the alerts sink (pipeline.orders). One read (the batch's users' cases that a new
alert can join or already holds) and one bulk write of upserts per batch. Case ids come from the
user and the case's first alert, so a batch written again after a crash lands in the same cases.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from txnmon.adapters.mongo import CasesRepository, MongoStore
from txnmon.core.batch import BatchResult, SinkOutcome
from txnmon.core.cases import SEVERITY_RANK, CaseChange, assign_cases, new_case_fields
from txnmon.core.records import STORE_FAILED, Rejection
from txnmon.core.rules.engine import owner_of
from txnmon.errors import StoreRefused

log = logging.getLogger("txnmon.stream")


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
        tid = owner_of(alert)
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

    def write(self, batch: BatchResult) -> SinkOutcome | None:
        if not batch.alerts:
            return None
        earliest = min(a["event_time"] for a in batch.alerts)
        known = CasesRepository(self.store).of_users({str(a["user_id"]) for a in batch.alerts}, earliest)
        changes = assign_cases(batch.alerts, known, self.window, alert_positions(batch))
        try:
            CasesRepository(self.store).upsert([case_write(c) for c in changes])
        except StoreRefused as exc:
            if not exc.refused:
                raise
            # the other cases are written (one unordered bulk write); the refused case's alerts'
            # transactions go to the DLQ with the reason instead of stopping the partition
            transaction_of = {a["_id"]: owner_of(a) for a in batch.alerts}
            dead: dict[str, Rejection] = {}
            for index, why in sorted(exc.refused.items()):
                change = changes[index]
                log.error("MongoDB refused case %s (%d alerts): %s", change.case_id, len(change.alert_ids), why)
                for alert_id in change.alert_ids:
                    dead.setdefault(transaction_of[alert_id],
                                    Rejection(STORE_FAILED, f"case {change.case_id:.200} refused: {why}"))
            return SinkOutcome(stage="cases", dead=dead)
        return None
