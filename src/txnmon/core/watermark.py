"""Event-time watermarks per partition, robust to a single outlier.

The watermark of a partition is the k-th newest event time it has seen (k = 10 by default): one
event dated far ahead (the contract accepts up to a day) cannot move it, so it cannot mark the
traffic after it late, nor make every user look idle. Kept per partition, so a member's view
does not depend on which partitions it held before, and exported for storing, so a restart or a
rebalance resumes where the last owner stopped.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Iterable, Mapping

DEFAULT_K = 10


class Watermarks:
    def __init__(self, k: int = DEFAULT_K) -> None:
        self.k = k
        self._newest: dict[int, list[dt.datetime]] = {}  # partition -> min-heap of its k newest event times

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

    def restore(self, saved: Mapping[int, Iterable[dt.datetime]]) -> None:
        for partition, times in saved.items():
            for t in times:
                self.observe(partition, t)

    def forget(self, partitions: Iterable[int]) -> None:
        for p in partitions:
            self._newest.pop(p, None)
