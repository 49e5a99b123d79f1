"""Parse once (issue 29): what routing validated is handed to the judging of its by-user copy, never
a different record's result, and the batch's output is byte for byte what a second parse gives."""

from __future__ import annotations

import datetime as dt
import json
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.core.test_contract_properties import transactions as odd_transactions
from txnmon.core import contract
from txnmon.core.batch import BatchConfig, process_batch, route_batch
from txnmon.core.handoff import Handoff, parse
from txnmon.core.records import Rejection, SourceRecord
from txnmon.core.rules import Detector, load_rules
from txnmon.core.watermark import Watermarks
from txnmon.settings import load_settings

NOW = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)
SETTINGS = load_settings(metrics_port=0)
CONFIG = BatchConfig.from_settings(SETTINGS)
RAW, BY_USER = "transactions.raw", "transactions.by_user"


def raw(offset: int, value: bytes) -> SourceRecord:
    return SourceRecord(RAW, 0, offset, None, value, 0)


def row(tid: str, minute: int, user: str = "U1", amount: float = 100.0) -> bytes:
    return json.dumps({"transaction_id": tid, "user_id": user, "amount": amount, "payment_method": "UPI",
                       "location": "Mumbai", "timestamp": f"2025-10-01T10:{minute:02d}:00Z"}).encode()


def counting_normalise(monkeypatch) -> list[int]:
    calls = [0]
    real = contract.normalise

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(contract, "normalise", counted)
    return calls


def as_by_user(forward, offsets: dict[int, int], partitions: int = 2) -> list[SourceRecord]:
    out = []
    for key, value, headers in forward:
        p = zlib.crc32(key) % partitions
        out.append(SourceRecord(BY_USER, p, offsets.get(p, 0), key, value, 0, tuple(headers)))
        offsets[p] = offsets.get(p, 0) + 1
    return out


def test_judging_what_was_routed_here_parses_each_record_once(monkeypatch):
    calls = counting_normalise(monkeypatch)
    handoff = Handoff()
    records = [raw(i, row(f"T{i}", i)) for i in range(10)]
    routed = route_batch(records, CONFIG, now=NOW, rules_version="2", handoff=handoff)
    result = process_batch(as_by_user(routed.forward, {}), Detector(load_rules(SETTINGS.rules_file)), CONFIG,
                           now=NOW + dt.timedelta(seconds=1), load_state=lambda users: {}, handoff=handoff)
    assert len(result.transactions) == 10
    assert calls[0] == 10 and handoff.hits == 10 and len(handoff) == 0


def test_only_the_exact_bytes_validated_here_skip_the_parse():
    handoff = Handoff()
    good = row("T1", 1)
    [tx] = [parse(good, None, zone=CONFIG.zone, now=NOW, max_bytes=CONFIG.max_message_bytes)]
    handoff.keep(good, tx, zone=CONFIG.zone, now=NOW, max_bytes=CONFIG.max_message_bytes)
    # a by-user record someone else wrote (another member, another version, by hand) is parsed in full
    written_elsewhere = json.dumps({"transaction_id": "T1", "user_id": "U1", "amount": -5}).encode()
    found = parse(written_elsewhere, handoff, zone=CONFIG.zone, now=NOW, max_bytes=CONFIG.max_message_bytes)
    assert isinstance(found, Rejection) and found.reason == "missing_field"
    assert handoff.hits == 0 and len(handoff) == 1
    # the same bytes under another contract (zone, size limit) are parsed again
    assert handoff.take(good, zone=CONFIG.zone, now=NOW, max_bytes=1_000) is None
    handoff.keep(good, tx, zone=CONFIG.zone, now=NOW, max_bytes=CONFIG.max_message_bytes)
    # a clock stepped back could turn "a day ahead" around: parsed again
    assert handoff.take(good, zone=CONFIG.zone, now=NOW - dt.timedelta(seconds=1),
                        max_bytes=CONFIG.max_message_bytes) is None
    handoff.keep(good, tx, zone=CONFIG.zone, now=NOW, max_bytes=CONFIG.max_message_bytes)
    assert handoff.take(good, zone=CONFIG.zone, now=NOW, max_bytes=CONFIG.max_message_bytes) is tx
    # given out once: a second copy of the bytes gets its own dict
    again = parse(good, handoff, zone=CONFIG.zone, now=NOW, max_bytes=CONFIG.max_message_bytes)
    assert again == tx and again is not tx


def test_the_handoff_lets_the_oldest_entries_go():
    handoff = Handoff(max_entries=3)
    for i in range(5):
        handoff.keep(row(f"T{i}", i), {"i": i}, zone=CONFIG.zone, now=NOW, max_bytes=CONFIG.max_message_bytes)
    assert len(handoff) == 3
    assert handoff.take(row("T1", 1), zone=CONFIG.zone, now=NOW, max_bytes=CONFIG.max_message_bytes) is None
    assert handoff.take(row("T4", 4), zone=CONFIG.zone, now=NOW, max_bytes=CONFIG.max_message_bytes) == {"i": 4}


# mostly valid rows of three users (so rules fire and history builds), repeats of earlier rows (producer
# retries, conflicting re-sends), and odd records from the contract's property tests
good_rows = st.builds(
    lambda tid, user, minute, amount, place: json.dumps(
        {"transaction_id": f"T{tid}", "user_id": user, "amount": amount, "payment_method": "UPI",
         "location": place, "timestamp": f"2025-10-01T{minute // 60:02d}:{minute % 60:02d}:00Z"}).encode(),
    st.integers(0, 40), st.sampled_from(["U1", "U2", " U3 "]), st.integers(0, 11 * 60),
    st.sampled_from([1.0, 99.5, 4_999.99, 60_000.0, 1e-05]), st.sampled_from(["Mumbai", "Delhi", "London"]))
odd_rows = odd_transactions.map(lambda obj: json.dumps(obj, ensure_ascii=True).encode())
record_values = st.lists(st.one_of(good_rows, good_rows, good_rows, odd_rows, st.binary(max_size=40)),
                         min_size=1, max_size=30)


def _run(batches: list[list[bytes]], handoff: Handoff | None) -> tuple[list, bytes, int]:
    detector = Detector(load_rules(SETTINGS.rules_file), unbounded_users=True)
    marks, offsets, out = Watermarks(), {}, []
    raw_offset = distinct = 0
    for n, values in enumerate(batches):
        now = NOW + dt.timedelta(seconds=n)
        records = [raw(raw_offset + i, v) for i, v in enumerate(values)]
        raw_offset += len(records)
        routed = route_batch(records, CONFIG, now=now, rules_version=detector.version, handoff=handoff)
        distinct += len({value for _, value, _ in routed.forward})
        later = now + dt.timedelta(milliseconds=500)
        result = process_batch(as_by_user(routed.forward, offsets), detector, CONFIG, now=later,
                               load_state=lambda users: {}, watermarks=marks, handoff=handoff)
        out.append((routed.forward, routed.rejects.dlq, routed.rejects.rejected, result.transactions,
                    result.alerts, result.suppressed, result.shadow, result.enriched, result.dlq,
                    result.rejected, dict(result.rejected_by_reason), sorted(result.resent)))
        touched = sorted({j.user_id for j in result.judgements.values()})
        out.append(sorted(detector.export_packed(set(touched)).items()))
    return out, repr(out).encode(), distinct


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(record_values, min_size=1, max_size=3))
def test_outputs_with_the_handoff_are_those_of_a_second_parse(batches):
    handoff = Handoff()
    with_handoff, as_bytes, distinct = _run(batches, handoff)
    parsed_twice, expected_bytes, _ = _run(batches, None)
    assert with_handoff == parsed_twice
    assert as_bytes == expected_bytes  # the enriched messages and the documents' values, byte for byte
    # every routed record was handed over (a second copy of the same bytes in a batch is parsed again)
    assert handoff.hits == distinct and len(handoff) == 0


def test_large_entries_are_let_go_by_the_bytes_they_hold_not_only_by_count():
    handoff = Handoff()  # the processor's defaults: the count alone would keep 20,000 of these (1.3 GB)
    size = 64 * 1024
    for i in range(1_200):  # 75 MB of raw bytes
        raw = i.to_bytes(4, "big") * (size // 4)
        handoff.keep(raw, {"i": i}, zone=CONFIG.zone, now=NOW, max_bytes=size)
    assert len(handoff) * size <= 64 * 1024 * 1024
    oldest, newest = (0).to_bytes(4, "big") * (size // 4), (1_199).to_bytes(4, "big") * (size // 4)
    assert handoff.take(oldest, zone=CONFIG.zone, now=NOW, max_bytes=size) is None
    assert handoff.take(newest, zone=CONFIG.zone, now=NOW, max_bytes=size) == {"i": 1_199}


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 50)), max_size=60), st.integers(1, 200))
def test_the_bytes_kept_never_pass_the_budget_and_are_counted_exactly(keeps, budget):
    handoff = Handoff(max_entries=1_000, max_kept_bytes=budget)
    for key, size in keeps:
        raw = bytes([key]) * size
        handoff.keep(raw, {}, zone=CONFIG.zone, now=NOW, max_bytes=CONFIG.max_message_bytes)
        if key % 3 == 0:
            handoff.take(raw, zone=CONFIG.zone, now=NOW, max_bytes=CONFIG.max_message_bytes)
        assert handoff.kept_bytes == sum(len(r) for r in handoff._kept) <= budget
