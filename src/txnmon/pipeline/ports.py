"""The pipeline's ports: what the processor loop and the window replay talk to, never a client library.

`txnmon stream` plugs in Kafka and MongoDB (services.wiring); the unit tests plug in lists
(tests/fixtures/doubles.py). A batch's Kafka side travels as one `Outbound`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from txnmon.core.batch import BatchResult, SinkOutcome
from txnmon.core.records import Message, SourceRecord
from txnmon.core.state_codec import Raised


class Sink(Protocol):
    """A destination of a processed batch. `write` is idempotent, raises RetryableError on an outage,
    and may report what the batch must learn (a refused transaction) as a SinkOutcome."""

    name: str

    def write(self, batch: BatchResult) -> SinkOutcome | None: ...


class Source(Protocol):
    """Where batches come from: a consumer-group member (kafka.GroupMember) or a list in tests."""

    def poll(self, timeout_ms: int, max_records: int) -> list[SourceRecord]: ...

    def lag(self) -> int | None: ...

    def close(self) -> None: ...


@dataclass
class Outbound:
    """Everything a batch sends to Kafka, committed atomically with the offsets it consumed."""

    by_user: list[Message] = field(default_factory=list)  # raw messages re-keyed by user
    by_user_timestamps: list[int] = field(default_factory=list)  # their raw timestamps, kept for windows
    dlq: list[Message] = field(default_factory=list)
    enriched: list[Message] = field(default_factory=list)
    state: list[tuple[int, Message]] = field(default_factory=list)  # (state partition, user -> state or tombstone)

    def __len__(self) -> int:
        return len(self.by_user) + len(self.dlq) + len(self.enriched) + len(self.state)


class Publisher(Protocol):
    """Sends a batch's Outbound and commits the consumed offsets with it, atomically."""

    def publish(self, out: Outbound, offsets: Mapping[tuple[str, int], int]) -> None: ...


class StateStore(Protocol):
    """The detector's per-user state of one partition, as committed: (user, (events, raised)) or a tombstone."""

    def restore(self, partition: int) -> Iterable[tuple[str, tuple[bytes, Raised] | None]]: ...
