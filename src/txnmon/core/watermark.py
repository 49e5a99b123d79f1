"""Event-time watermarks per partition, robust to a single outlier.

The watermark of a partition is the k-th newest event time it has seen (k = 10 by default): one
event dated far ahead (the contract accepts up to a day) cannot move it, so it cannot mark the
traffic after it late, nor make every user look idle. Kept per partition, so a member's view
does not depend on which partitions it held before, and exported for storing, so a restart or a
rebalance resumes where the last owner stopped.

A batch's watermarks are stored before its offsets are committed. If the process dies in between,
the batch is judged again, and must not see its own advance (its `late` flags would differ from the
ones its first attempt stored): so they are stored with what they were before the batch and the
offset after it (`stored`), and a restored partition whose next batch starts before that offset
goes back to the marks before (`start`).
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_K = 10


class Watermarks:
    def __init__(self, k: int = DEFAULT_K) -> None:
        self.k = k
        self._newest: dict[int, list[dt.datetime]] = {}  # partition -> min-heap of its k newest event times
        self._redo: dict[int, tuple[int, list[dt.datetime]]] = {}  # restored: (next offset, marks before that batch)

    def observe(self, partition: int, event_time: dt.datetime) -> None:
        heap = self._newest.setdefault(partition, [])
        if len(heap) < self.k:
            heapq.heappush(heap, event_time)
        elif event_time > heap[0]:
            heapq.heapreplace(heap, event_time)

    def of(self, partition: int) -> dt.datetime | None:
        """The partition's watermark, or None until it has seen k events."""
        heap = self._newest.get(partition)
        return heap[0] if heap is not None and len(heap) >= self.k else None

    def overall(self) -> dt.datetime | None:
        """The newest of the partitions' watermarks (what user-state eviction goes by)."""
        marks = [m for p in self._newest if (m := self.of(p)) is not None]
        return max(marks) if marks else None

    def known(self) -> set[int]:
        return set(self._newest)

    def export(self, partitions: Iterable[int]) -> dict[int, list[dt.datetime]]:
        return {p: sorted(self._newest[p]) for p in partitions if p in self._newest}

    def restore(self, saved: Mapping[int, Iterable[dt.datetime] | Mapping[str, Any]]) -> None:
        """Merge stored watermarks in: per partition the event times, or a `stored` document."""
        for partition, marks in saved.items():
            if isinstance(marks, Mapping):
                if marks.get("before") is not None and marks.get("next_offset") is not None:
                    self._redo[partition] = (int(marks["next_offset"]), list(marks["before"]))
                marks = marks.get("newest") or []
            for t in marks:
                self.observe(partition, t)

    def start(self, partition: int, offset: int) -> None:
        """A batch's first record on `partition` is at `offset`. Right after a restore, an offset before
        the end of the batch that stored the marks means that batch was never committed and is being
        judged again: it gets the marks it started from."""
        redo = self._redo.pop(partition, None)
        if redo is not None and offset < redo[0]:
            self._newest.pop(partition, None)
            for t in redo[1]:
                self.observe(partition, t)

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._newest.pop(p, None)
            self._redo.pop(p, None)


def stored(after: Mapping[int, list[dt.datetime]], before: Mapping[int, list[dt.datetime]],
           next_offsets: Mapping[int, int]) -> dict[int, dict[str, Any]]:
    """What is stored for a batch's partitions: the marks after it, before it, and the offset after it."""
    return {p: {"newest": times, "before": list(before.get(p, [])), "next_offset": next_offsets[p]}
            for p, times in after.items() if p in next_offsets}
