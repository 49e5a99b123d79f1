"""Writing one processed batch: the sinks in their order, each retried through outages, each
sink's outcome applied to the batch before the next sink runs. The same runner serves the
processor and the window replay. Nothing here commits offsets: the caller commits only after
every sink has written.

A document MongoDB refuses for good stops nothing: its transaction's record goes to the DLQ with
the reason (`dead_letter`), and the DLQ records found after the `rejected` sink ran are stored by
running that sink again (it is idempotent) once the others are done.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Set

from txnmon.core.batch import BatchResult
from txnmon.core.records import Rejection
from txnmon.pipeline.ports import Sink
from txnmon.pipeline.retry import with_retry


def write_batch(batch: BatchResult, sinks: Sequence[Sink], *, should_stop: Callable[[], bool],
                on_retry: Callable[[str], None] = lambda _: None) -> tuple[int, int]:
    """Write everything a batch produced, sink by sink; return (transactions inserted, already stored)."""
    dlq_store: tuple[Sink, int] | None = None  # the sink that stores DLQ records, and how many it saw
    for sink in sinks:
        outcome = with_retry(lambda s=sink: s.write(batch), sink=sink.name, should_stop=should_stop,
                             on_retry=on_retry)
        if getattr(sink, "stores_rejected", False):
            dlq_store = (sink, len(batch.rejected))
        batch.apply(outcome)
        if outcome is not None and outcome.dead:
            dead_letter(batch, outcome.dead, outcome.stage, outcome.refused_alerts)
    if dlq_store is not None and len(batch.rejected) > dlq_store[1]:
        sink = dlq_store[0]
        with_retry(lambda: sink.write(batch), sink=sink.name, should_stop=should_stop, on_retry=on_retry)
    return batch.inserted, batch.existing


def dead_letter(batch: BatchResult, rejections: Mapping[str, Rejection], stage: str,
                refused_alerts: Set[str] = frozenset()) -> None:
    """Stored transactions whose alert, outbox entry or case MongoDB refused for good: each one's
    record goes to the DLQ with the reason (once per batch), and the refused alerts (only those: the
    others are stored) leave the later sinks. The transaction stays stored and stays in its user's
    history: it was judged and kept."""
    by_id = {d["_id"]: d for d in batch.transactions}
    gone = {tid for tid in rejections if tid in by_id}
    already = {id(r) for r in batch.rejected_records.values()}
    for tid in sorted(gone):
        record, doc = batch.originals[tid], by_id[tid]
        if id(record) not in already:
            batch.reject(record, rejections[tid], doc["processed_time"], stage, doc["rules_version"])
            already.add(id(record))
    batch.drop_alerts(lambda a: a["_id"] in refused_alerts)
