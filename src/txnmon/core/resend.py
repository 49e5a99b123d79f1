"""Re-sends: a transaction that arrives again (a producer retry, a file replayed twice, a forced DLQ
re-drive) is judged once, whenever the copies arrive.

Two places know a transaction was judged before. The detector's history holds each user's recent
events: a copy whose id is there with the same rule fields is not judged again (`same_event`). An
older one is judged, and the transactions sink then finds it stored: `sort_stored` says whether the
stored copy is this very delivery written before a crash (the same message and verdict: write it
again, idempotently), another delivery of the same content (a re-send: drop everything it raised)
or other content under the same id (a conflict: the DLQ). Pure functions; the sink does the reading.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from txnmon.core.records import Rejection, SourceRecord
from txnmon.core.rules.state import Event


@dataclass(frozen=True)
class SinkOutcome:
    """What a sink reports back about a batch it wrote; the batch applies it (`BatchResult.apply`).

    `withdraw`: transactions the store refused for good, or found stored with other content: they go
    to the DLQ with their reason instead. `resent`: judged transactions stored before from another
    delivery with this content (a re-send older than the detector's history): dropped with all they
    raised. `existing`: how many of the batch's transactions were stored before, when the sink knows."""

    withdraw: Mapping[str, Rejection] = field(default_factory=dict)
    stage: str = "store"
    existing: int | None = None
    resent: frozenset[str] = frozenset()
    # stored transactions whose alert, outbox entry or case was refused for good: to the DLQ (pipeline.runner)
    dead: Mapping[str, Rejection] = field(default_factory=dict)
    # the alerts among those refused documents: only they leave the later sinks (the transaction's
    # other alerts are stored, so they still go into cases and notifications)
    refused_alerts: frozenset[str] = frozenset()


class Resent(NamedTuple):
    """A copy of a transaction the detector's history already holds: not judged again; the
    transactions sink checks that the stored copy has its content."""

    record: SourceRecord
    fingerprint: str
    seen_at: dt.datetime
    rules_version: str


def same_event(new: Event, kept: Event) -> bool:
    """Whether a transaction's rule fields equal those kept in the user's history under its id.

    Histories written before payment methods were kept hold "" for it: not a difference."""
    if kept.payment_method == "" and new.payment_method != "":
        new = new._replace(payment_method="")
    return new == kept


VERDICT_FIELDS = ("alert_reasons", "risk_score", "late")


def _same_delivery(ours: Mapping[str, Any], stored: Mapping[str, Any]) -> bool:
    """The same message judged the same way: a batch redone after a crash.

    The same message is its raw position (`source`) and, when both say it, the by-user position it
    was judged from (a redelivery to a new group re-keys a raw message again, at a new by-user offset).
    A redo is judged from the state committed before its first attempt, so it reaches the stored
    verdict. A new group also reads the first pass's by-user records, at their stored positions;
    one whose event has left its user's history is judged against what came after it and can reach
    another verdict: a re-send, whose stored verdict stands."""
    if stored.get("source") != ours.get("source"):
        return False
    positions = stored.get("judged_at"), ours.get("judged_at")
    if None not in positions and positions[0] != positions[1]:
        return False
    if _model_version(stored) != _model_version(ours):
        # judged with another model (a promotion between a crash and its retry, or the retry judged
        # before the promoted model was loaded): the verdicts may differ for that reason alone, so a
        # difference says nothing about a re-send. The stored document stays as it was (docs/model.md).
        return True
    return all(stored[f] == ours.get(f) for f in VERDICT_FIELDS if f in stored)


def _model_version(doc: Mapping[str, Any]) -> str | None:
    model = doc.get("model")
    return model.get("version") if isinstance(model, Mapping) else None


@dataclass
class StoredCopies:
    """What the stored copies say about a batch's transactions (ids only)."""

    conflicts: list[str] = field(default_factory=list)  # other content under the id: the DLQ
    resent: list[str] = field(default_factory=list)  # judged, but stored from another delivery: dropped
    known: int = 0  # stored before with this content (the re-sends and the crash redos)


def sort_stored(ours: Mapping[str, Mapping[str, Any]], stored: Iterable[Mapping[str, Any]],
                unjudged: Mapping[str, str]) -> StoredCopies:
    """`ours`: the batch's judged documents by id; `stored`: the stored copies of some of them and of
    the `unjudged` ones (id -> content fingerprint: copies the detector's history already held).

    Documents stored before fingerprints existed carry none: nothing to compare, a harmless copy."""
    out = StoredCopies()
    for doc in stored:
        tid = doc["_id"]
        fingerprint = ours[tid].get("content_hash") if tid in ours else unjudged.get(tid)
        if doc.get("content_hash") is not None and doc["content_hash"] != fingerprint:
            out.conflicts.append(tid)
            continue
        out.known += 1
        if tid in ours and not _same_delivery(ours[tid], doc):
            out.resent.append(tid)
    return out
