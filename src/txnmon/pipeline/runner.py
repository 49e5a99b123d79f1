"""Writing one processed batch: the sinks in their order, each retried through outages, each
sink's outcome applied to the batch before the next sink runs. The same runner serves the
processor and the window replay. Nothing here commits offsets: the caller commits only after
every sink has written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from txnmon.core.batch import BatchResult
from txnmon.pipeline.ports import Sink
from txnmon.pipeline.retry import with_retry


def write_batch(batch: BatchResult, sinks: Sequence[Sink], *, should_stop: Callable[[], bool],
                on_retry: Callable[[str], None] = lambda _: None) -> tuple[int, int]:
    """Write everything a batch produced, sink by sink; return (transactions inserted, already stored)."""
    for sink in sinks:
        outcome = with_retry(lambda s=sink: s.write(batch), sink=sink.name, should_stop=should_stop,
                             on_retry=on_retry)
        batch.apply(outcome)
    return batch.inserted, batch.existing
