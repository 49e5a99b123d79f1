"""A user's detector state as bytes for the state changelog topic, and back.

The value is the packed history the detector holds in memory (`rules.state.pack_events`: times to
the microsecond, so a restored history is exactly the one that was written) behind a short
header with the user's latest raised alert per rule. Writing it costs no decoding, and a restore
of a million users is a copy, not a parse.

    byte 0      format (3; format 2 values, whose events carry no payment method, are migrated
                on read: their events get an empty payment method, i.e. "not known")
    bytes 1-4   length n of the raised-alerts JSON (little-endian)
    n bytes     {"rule": ["<ISO event time>", "<alert id>"], ...}
    the rest    packed events
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections.abc import Iterable, Mapping

from txnmon.core.records import Message
from txnmon.core.rules.state import MAX_PACKED_BYTES, pack_events, packed_within, unpack_events, unpack_events_v2

FORMAT = 3
_MIGRATABLE = {2}
_HEAD = struct.Struct("<BI")

Raised = Mapping[str, tuple[dt.datetime, str]]


def encode_user_state(events: bytes, raised: Raised) -> bytes:
    """One user's packed events and raised alerts -> changelog value (within Kafka's 1 MiB: the
    detector keeps histories within MAX_PACKED_BYTES; one restored from an older txnmon is cut here)."""
    if len(events) > MAX_PACKED_BYTES:
        events = packed_within(unpack_events(events))
    head = json.dumps({rule: [t.astimezone(dt.UTC).isoformat(), alert_id] for rule, (t, alert_id) in raised.items()},
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8") if raised else b""
    return b"".join((_HEAD.pack(FORMAT, len(head)), head, events))


def decode_user_state(raw: bytes) -> tuple[bytes, dict[str, tuple[dt.datetime, str]]]:
    """Changelog value -> (packed events, raised alerts), what `Detector.import_packed` takes."""
    if len(raw) < _HEAD.size:
        raise ValueError(f"user state of {len(raw)} bytes is too short")
    version, n = _HEAD.unpack_from(raw)
    if version != FORMAT and version not in _MIGRATABLE:
        raise ValueError(f"unknown user state format {version!r} (this txnmon reads formats 2 and {FORMAT}); "
                         "a newer txnmon wrote it: run that version, or delete the state topic to rebuild from "
                         "stored transactions")
    start = _HEAD.size
    raised = {rule: (dt.datetime.fromisoformat(t), alert_id)
              for rule, (t, alert_id) in json.loads(raw[start:start + n]).items()} if n else {}
    events = raw[start + n:]
    if version == 2:
        events = pack_events(unpack_events_v2(events))
    return events, raised


def state_messages(detector_export: Mapping[str, tuple[bytes, Raised]], dropped: Iterable[str],
                   partition_of: Mapping[str, int]) -> list[tuple[int, Message]]:
    """The changelog records of a batch: each touched user's state, a tombstone for each evicted one."""
    out: list[tuple[int, Message]] = []
    for user_id, (events, raised) in detector_export.items():
        out.append((partition_of[user_id], (user_id.encode("utf-8"), encode_user_state(events, raised), None)))
    for user_id in dropped:
        if user_id in partition_of and user_id not in detector_export:
            out.append((partition_of[user_id], (user_id.encode("utf-8"), b"", None)))
    return out
