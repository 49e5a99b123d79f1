"""One consumed message of any event kind judged by its kind's contract, and a bad one turned into
what the DLQ gets: the same DLQ message (original key and bytes, reason and source in headers) and
the same `rejected` document (`_id` = source position) as a rejected transaction.

`txnmon events` (services/events.py, through core/event_batch.py) calls `judge_event` per record, so a
bad cart event, stock event or review is rejected exactly like a transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from txnmon.core.batch import on_rejected, processing_error, rejected_document
from txnmon.core.event_contracts import event_kind
from txnmon.core.records import Message, Rejection, SourceRecord


@dataclass(frozen=True)
class JudgedEvent:
    """A message's verdict: the normalised event, or its rejection with the DLQ message and document."""

    event: dict[str, Any] | None
    rejection: Rejection | None = None
    dlq: Message | None = None
    rejected: dict[str, Any] | None = None


def judge_event(kind: str, record: SourceRecord, *, zone: ZoneInfo, now: dt.datetime, max_bytes: int,
                dlq_max_bytes: int = 256 * 1024, rules_version: str = "") -> JudgedEvent:
    """`record` judged by the contract of `kind` (a name in EVENT_KINDS). A message the contract
    refuses, or one whose judging raised (the design rule: no single record stops a batch), gets
    its DLQ message and `rejected` document, stage "validate", as the transactions' batch makes them."""
    contract = event_kind(kind)
    try:
        parsed = contract.parse(record.value, zone=zone, now=now, max_bytes=max_bytes)
    except Exception as exc:
        parsed = processing_error(record, exc)
    if not isinstance(parsed, Rejection):
        return JudgedEvent(parsed)
    return JudgedEvent(None, parsed, on_rejected(record, parsed, now, dlq_max_bytes),
                       rejected_document(record, parsed, now, "validate", rules_version))
