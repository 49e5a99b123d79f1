"""What `POST /v1/transactions` makes of a request body: its records, each judged by the processor's own
validator (`parse_transaction`, so the API and the stream can never disagree on a record), and the
answer. Pure: no I/O, no clock (the caller passes `now`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from txnmon.core.contract import OPTIONAL_FIELDS, REQUIRED_FIELDS, parse_transaction
from txnmon.core.records import NOT_JSON, Message, Rejection


class BadBody(ValueError):
    """The body as a whole is unusable (not JSON, not an object, too many records): `status` says how."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason


def records_of(body: bytes, max_records: int) -> list[Any]:
    """The records a body carries: one transaction object, or `{"transactions": [...]}`."""
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadBody(400, "not_json", f"the body is not JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise BadBody(400, "not_object", "the body must be a JSON object: one transaction, or "
                                         '{"transactions": [...]}')
    if "transactions" not in doc:
        return [doc]
    batch = doc["transactions"]
    if not isinstance(batch, list) or not batch:
        raise BadBody(400, "bad_batch", '"transactions" must be a non-empty list of transaction objects')
    if len(batch) > max_records:
        raise BadBody(413, "too_many_records", f"{len(batch)} records, at most {max_records} per request")
    return batch


_ENVELOPE = msgspec.json.Decoder(dict[str, msgspec.Raw])
_BATCH = msgspec.json.Decoder(list[msgspec.Raw])


def read_body(body: bytes, max_records: int) -> tuple[list[Any], list[bytes] | None]:
    """The body's records, and each record's own bytes as the client sent them when msgspec reads the
    body (the common case): those bytes are then what is judged and sent, so no record is encoded again
    and the processor reads exactly what the API judged. Any body msgspec refuses (or reads as something
    other than a plain batch) goes through `records_of`, which judges it as before and names what is
    wrong; raws are then None and each record is encoded as before.
    """
    try:
        doc = msgspec.json.decode(body)  # C speed; stricter than `json` (NaN, 1e999, lone surrogates, depth)
        if type(doc) is not dict:
            return records_of(body, max_records), None
        if "transactions" not in doc:
            return [doc], [body]
        batch = doc["transactions"]
        if type(batch) is not list or not batch or len(batch) > max_records:
            return records_of(body, max_records), None  # records_of raises, in its own words
        raws = [bytes(raw) for raw in _BATCH.decode(_ENVELOPE.decode(body)["transactions"])]
    except (msgspec.DecodeError, RecursionError, ValueError):
        return records_of(body, max_records), None
    return batch, raws


def _no_constant(token: str) -> float:
    raise ValueError(f"{token} is not valid JSON")


def _finite(token: str) -> float:
    # 1e999 would read as infinity, which no JSON can carry on to the raw topic
    value = float(token)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{token[:40]} is out of range")
    return value


_FIELDS = sorted(REQUIRED_FIELDS + OPTIONAL_FIELDS, key=len, reverse=True)
_FIELD = re.compile(r"\b(" + "|".join(_FIELDS) + r")\b")
_QUOTED = re.compile(r"field name '([^']*)'")


def field_of(rejection: Rejection) -> str | None:
    """The field a rejection is about, read from its detail (which always names it), or None for a
    record-wide reason (too large, not an object)."""
    quoted = _QUOTED.search(rejection.detail)
    if quoted:
        return quoted.group(1)
    named = _FIELD.search(rejection.detail)
    return named.group(1) if named else None


@dataclass
class Judged:
    """One request's records after the contract: what to send, and what was refused (with why)."""

    to_send: list[tuple[int, str, Message]] = field(default_factory=list)  # (index, transaction id, message)
    rejected: list[dict[str, Any]] = field(default_factory=list)


def judge(records: Sequence[Any], *, zone: ZoneInfo, now: dt.datetime, max_bytes: int,
          raws: Sequence[bytes] | None = None) -> Judged:
    """Each record through the processor's validator; a valid one becomes the message the processor
    would read (the record as sent, keyed by its user id, as `txnmon replay` sends). `raws`, when given,
    are the records' own bytes (`read_body`): judged and sent as they are."""
    judged = Judged()
    for index, record in enumerate(records):
        if raws is not None:
            raw: bytes | None = raws[index]
        else:
            try:
                raw = json.dumps(record, ensure_ascii=False, allow_nan=False).encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate ("\ud800") parses as JSON but is no UTF-8 text
                raw = None
        parsed = parse_transaction(raw, zone=zone, now=now, max_bytes=max_bytes) if raw is not None else \
            Rejection(NOT_JSON, "a text value is not valid Unicode (a lone surrogate escape)")
        if isinstance(parsed, Rejection):
            tx_id = record.get("transaction_id") if isinstance(record, dict) else None
            judged.rejected.append({"index": index, "transaction_id": tx_id if isinstance(tx_id, str | int) else None,
                                    "reason": parsed.reason, "field": field_of(parsed), "detail": parsed.detail})
            continue
        judged.to_send.append((index, parsed["transaction_id"], (parsed["user_id"].encode("utf-8"), raw, None)))
    return judged


def answer(accepted: list[str], duplicates: list[str], rejected: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """The status and body: 202 when any record was accepted, 200 when all others were duplicates,
    422 when nothing was accepted and something was refused."""
    body: dict[str, Any] = {"accepted": accepted, "duplicates": duplicates, "rejected": rejected,
                            "duplicate": bool(duplicates) and not accepted and not rejected}
    if accepted:
        return 202, body
    if rejected:
        body["error"] = "invalid_records"
        body["reason"] = "; ".join(f"record {r['index']}: {r['detail']}" for r in rejected[:5])
        return 422, body
    return 200, body
