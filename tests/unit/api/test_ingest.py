import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from txnmon.api import ingest
from txnmon.core.contract import parse_transaction

NOW = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
UTC = ZoneInfo("UTC")
GOOD = {"transaction_id": "t1", "user_id": "u1", "amount": 10.5, "payment_method": "card",
        "location": "Paris", "timestamp": "2026-01-01T11:00:00Z"}


def judge(records):
    return ingest.judge(records, zone=UTC, now=NOW, max_bytes=64 * 1024)


def test_one_object_or_a_batch():
    assert ingest.records_of(json.dumps(GOOD).encode(), 10) == [GOOD]
    assert ingest.records_of(json.dumps({"transactions": [GOOD, GOOD]}).encode(), 10) == [GOOD, GOOD]


@pytest.mark.parametrize(("body", "status"), [
    (b"{", 400), (b"[1]", 400), (b'{"transactions": []}', 400), (b'{"transactions": {}}', 400),
    (b'{"amount": 1e999}', 400), (b"\xff", 400), (b'{"transactions": [1, 2, 3]}', 413),
])
def test_unusable_bodies_are_refused_whole(body, status):
    with pytest.raises(ingest.BadBody) as caught:
        ingest.records_of(body, 2)
    assert caught.value.status == status and caught.value.reason


def test_a_bad_record_is_refused_naming_the_field_and_the_others_are_kept():
    judged = judge([GOOD, {**GOOD, "transaction_id": "t2", "amount": "lots"}, {**GOOD, "transaction_id": "t3"}])
    assert [tx_id for _, tx_id, _ in judged.to_send] == ["t1", "t3"]
    assert judged.rejected == [{"index": 1, "transaction_id": "t2", "reason": "bad_amount", "field": "amount",
                                "detail": "amount is not numeric: 'lots'"}]


def test_a_lone_surrogate_is_a_refused_record_not_a_server_error():
    judged = judge([{**GOOD, "note": "\ud800"}, {**GOOD, "transaction_id": "t2"}])
    assert [tx_id for _, tx_id, _ in judged.to_send] == ["t2"]
    assert [(r["index"], r["reason"]) for r in judged.rejected] == [(0, "not_json")]


@pytest.mark.parametrize(("record", "field"), [
    ({k: v for k, v in GOOD.items() if k != "location"}, "location"),
    ({**GOOD, "timestamp": "yesterday"}, "timestamp"),
    ({**GOOD, "status": "maybe"}, "status"),
    ({**GOOD, "$where": 1}, "$where"),
    ({**GOOD, "user_id": ["x"]}, "user_id"),
])
def test_the_rejection_names_the_field(record, field):
    assert judge([record]).rejected[0]["field"] == field


def test_the_message_sent_is_what_the_processor_accepts_keyed_by_user():
    (_, _, (key, value, _)), = judge([{**GOOD, "user_id": " u1 "}]).to_send
    assert key == b"u1"
    assert not isinstance(parse_transaction(value, zone=UTC, now=NOW, max_bytes=64 * 1024), ingest.Rejection)


def test_the_answer_status():
    assert ingest.answer(["t1"], [], [])[0] == 202
    status, body = ingest.answer([], ["t1"], [])
    assert (status, body["duplicate"]) == (200, True)
    status, body = ingest.answer([], [], [{"index": 0, "detail": "amount is not numeric"}])
    assert status == 422 and "amount" in body["reason"]


def test_a_record_is_judged_and_sent_as_the_bytes_the_client_sent():
    first = b'{"transaction_id": "t1", "user_id": "u1", "amount": 10.50, "payment_method": "card",  ' \
            b'"location": "Caf\\u00e9 Paris", "timestamp": "2026-01-01T11:00:00Z"}'
    body = b'{"transactions": [' + first + b', ' + json.dumps({**GOOD, "transaction_id": "t2"}).encode() + b"]}"
    records, raws = ingest.read_body(body, 10)
    assert raws is not None and raws[0] == first and records[0]["location"] == "Café Paris"
    judged = ingest.judge(records, zone=UTC, now=NOW, max_bytes=64 * 1024, raws=raws)
    assert judged.to_send[0][2][1] == first  # not encoded again
    assert ingest.read_body(first, 10) == ([records[0]], [first])  # one transaction: the whole body


@pytest.mark.parametrize(("body", "status"), [
    (b"{", 400), (b"[1]", 400), (b'{"transactions": []}', 400), (b'{"transactions": {}}', 400),
    (b'{"amount": 1e999}', 400), (b'{"transactions": [{"amount": NaN}]}', 400), (b"\xff", 400),
    (b'{"transactions": [1, 2, 3]}', 413),
])
def test_read_body_refuses_the_same_bodies_as_before(body, status):
    with pytest.raises(ingest.BadBody) as caught:
        ingest.read_body(body, 2)
    assert caught.value.status == status and caught.value.reason


def test_a_body_msgspec_refuses_but_json_reads_is_judged_as_before():
    body = json.dumps({"transactions": [{**GOOD, "note": "\ud800"}, {**GOOD, "transaction_id": "t2"}]}).encode()
    records, raws = ingest.read_body(body, 10)
    assert raws is None
    judged = ingest.judge(records, zone=UTC, now=NOW, max_bytes=64 * 1024, raws=raws)
    assert [tx_id for _, tx_id, _ in judged.to_send] == ["t2"] and judged.rejected[0]["reason"] == "not_json"
