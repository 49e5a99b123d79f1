"""A record's identity: where it first arrived, and a digest of its content.

A record re-keyed into the by-user topic carries its raw position in headers, so the stored document's
`source`, a rejected record's id and the DLQ headers name the raw topic whichever hop judged it. The
content fingerprint tells a re-send (same id, same content) from a conflict (same id, other content).
Both run once per transaction on the hot path, so neither builds more than it returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from txnmon.core import fastjson
from txnmon.core.records import SourceRecord

__all__ = ["SOURCE_HEADERS", "content_fingerprint", "fingerprint_of", "origin_of", "origin_position"]


def content_fingerprint(tx: Mapping[str, Any]) -> str:
    """A digest of the transaction as the contract normalised it: equal content, equal digest.

    Two messages with one transaction id and different fingerprints are a conflict, not a retry.
    """
    return fingerprint_of(tx)[0]


def fingerprint_of(tx: Mapping[str, Any]) -> tuple[str, bool]:
    """`content_fingerprint`, and `fastjson.plain(tx)`, which judging reuses for the enriched message."""
    plain = fastjson.plain(tx)
    return hashlib.sha256(fastjson.sorted_ascii_json(tx, plain)).hexdigest()[:32], plain


SOURCE_HEADERS = ("txnmon.source.topic", "txnmon.source.partition", "txnmon.source.offset")


def origin_of(record: SourceRecord) -> SourceRecord:
    """Where a record first arrived: a record re-keyed into the by-user topic carries its raw
    position in headers; ids of rejected records and `source` of documents use that position."""
    found = origin_position(record)
    if found is None:
        return record
    return SourceRecord(*found, record.key, record.value, record.timestamp_ms, record.headers)


def origin_position(record: SourceRecord) -> tuple[str, int, int] | None:
    """`origin_of` as (topic, partition, offset), None when the record carries none: no record is built."""
    headers = record.headers
    if not headers:
        return None
    if len(headers) >= 3 and (headers[-3][0], headers[-2][0], headers[-1][0]) == SOURCE_HEADERS:
        # where routing puts them, last: no later copy of a name can override them (the usual case)
        topic, partition, offset = headers[-3][1], headers[-2][1], headers[-1][1]
    else:
        found = {k: v for k, v in headers if k in SOURCE_HEADERS}  # the last copy of each name counts
        if len(found) != len(SOURCE_HEADERS):
            return None
        topic, partition, offset = (found[name] for name in SOURCE_HEADERS)
    try:
        return topic.decode(), int(partition), int(offset)
    except (ValueError, UnicodeDecodeError):
        return None
