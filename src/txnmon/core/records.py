"""The plain data that flows through the pipeline: consumed records, messages to send, rejections.

No client objects cross the layers: the Kafka connector turns what it polls into `SourceRecord`s
and sends `Message` tuples; everything in between is pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple


class SourceRecord(NamedTuple):
    """One consumed message as plain data: the processor never sees client objects. A tuple: two are made
    per transaction (as consumed from the raw and the by-user topic), and a frozen dataclass's checked
    field setting cost about 0.6 µs more each (issue 29)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


# (key, value, headers) of a message to produce
Message = tuple[bytes | None, bytes, Sequence[tuple[str, bytes]] | None]


@dataclass(frozen=True)
class Rejection:
    """Why a message is not a valid transaction. `reason` is a code, `detail` is for humans."""

    reason: str
    detail: str


# Reason codes: stable identifiers for DLQ records, metrics and `txnmon dlq --reason`.
# The contract's (a message that is not a valid transaction):
TOO_LARGE = "too_large"
NOT_UTF8 = "not_utf8"
NOT_JSON = "not_json"
NOT_OBJECT = "not_object"
FORBIDDEN_KEY = "forbidden_key"
MISSING_FIELD = "missing_field"
BAD_FIELD = "bad_field"
BAD_AMOUNT = "bad_amount"
BAD_TIMESTAMP = "bad_timestamp"
FUTURE_TIMESTAMP = "future_timestamp"
# The pipeline's (a valid transaction that could not be handled):
STORE_FAILED = "store_failed"  # MongoDB refused the document for good
PROCESSING_ERROR = "processing_error"  # any exception while handling this one record
DUPLICATE_ID_CONFLICT = "duplicate_id_conflict"  # a transaction id seen before with other content
REJECTION_REASONS = (TOO_LARGE, NOT_UTF8, NOT_JSON, NOT_OBJECT, FORBIDDEN_KEY, MISSING_FIELD, BAD_FIELD,
                     BAD_AMOUNT, BAD_TIMESTAMP, FUTURE_TIMESTAMP, STORE_FAILED, PROCESSING_ERROR,
                     DUPLICATE_ID_CONFLICT)
