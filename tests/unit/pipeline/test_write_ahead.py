"""Transactions written ahead while the batch is judged (src/txnmon/pipeline/write_ahead.py): the batch's
outcome and the store's contents are those of the sink writing everything itself, whatever happens to a
chunk written ahead (stored before, refused, an outage)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from tests.fixtures.doubles import MemoryStore
from txnmon.core.batch import BatchConfig, process_batch
from txnmon.core.collection_names import ALERTS, TRANSACTIONS
from txnmon.core.records import DUPLICATE_ID_CONFLICT, STORE_FAILED, SourceRecord
from txnmon.core.rules import Detector, parse_rules
from txnmon.errors import StoreRefused, StoreUnavailable
from txnmon.pipeline.runner import write_batch
from txnmon.pipeline.sinks import AlertsSink, TransactionsSink
from txnmon.pipeline.write_ahead import WriteAhead
from txnmon.settings import load_settings

NOW = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)
CONFIG = BatchConfig.from_settings(load_settings(metrics_port=0))
RULES = "state:\n  max_events_per_user: 3\n"


def record(offset: int, tid: str, user: str = "U1", **extra: object) -> SourceRecord:
    row = {"transaction_id": tid, "user_id": user, "amount": 100, "payment_method": "UPI", "location": "Mumbai",
           "timestamp": f"2025-09-30T10:00:{offset % 60:02d}Z", **extra}
    return SourceRecord("transactions.raw", 0, offset, user.encode(), json.dumps(row).encode(), 0)


def write(records: list[SourceRecord], detector: Detector, store: Any, every: int) -> Any:
    """One batch as the processor handles it, with `every` > 0 written ahead in parts of that many."""
    ahead = WriteAhead(store, every) if every else None
    try:
        if ahead is not None:
            ahead.begin()
        batch = process_batch(records, detector, CONFIG, now=NOW, load_state=lambda users: {},
                              on_judged=ahead.submit if ahead is not None else None, judged_every=every)
        write_batch(batch, [TransactionsSink(store, ahead), AlertsSink(store)], should_stop=lambda: False)
    finally:
        if ahead is not None:
            ahead.close()
    for tid in batch.withdrawn:
        detector.forget(batch.judgements[tid].user_id, tid)
    return batch


def outcome(batch: Any) -> tuple[Any, ...]:
    return ([d["_id"] for d in batch.transactions], sorted(a["_id"] for a in batch.alerts),
            sorted((d["_id"], d["reason"]) for d in batch.rejected), sorted(batch.withdrawn),
            batch.inserted, batch.existing, len(batch.enriched))


def story(every: int, store: Any) -> list[tuple[Any, ...]]:
    """New bursts, a re-send older than the history, a batch redone after a crash, a conflict."""
    detector = Detector(parse_rules(RULES, "test rules"))
    burst = [record(i, f"B{i}") for i in range(4)] + [record(10 + i, f"C{i}", "U2") for i in range(3)]
    out = [outcome(write(burst, detector, store, every))]
    out.append(outcome(write([record(20, "B0")], detector, store, every)))  # older than the 3 kept: dropped
    redo = Detector(parse_rules(RULES, "test rules"))  # the crash: state from before, the store written
    out.append(outcome(write(burst, redo, store, every)))
    out.append(outcome(write([record(30, "C0", "U2", product_id="P9"), record(31, "D1", "U3")], redo, store,
                             every)))
    return out


@pytest.mark.parametrize("every", [1, 2, 5])
def test_written_ahead_the_batches_and_the_store_end_as_the_sink_alone_leaves_them(every):
    alone, ahead = FlakyStore([]), FlakyStore([])
    assert story(every, ahead) == story(0, alone)
    assert ahead.collections == alone.collections
    # the first batch's 7 judged: parts of `every` written ahead, the rest (if any) by the sink
    judged = [f"B{i}" for i in range(4)] + [f"C{i}" for i in range(3)]
    assert ahead.calls[:7 // every] == [judged[k * every:(k + 1) * every] for k in range(7 // every)]
    assert len(alone.calls) == 4  # one insert per batch without it
    assert DUPLICATE_ID_CONFLICT in {reason for _, reason in story(every, MemoryStore())[3][2]}


class FlakyStore(MemoryStore):
    """A MemoryStore whose inserts of `TRANSACTIONS` fail as told, one call at a time, then work."""

    def __init__(self, failures: list[BaseException | None]) -> None:
        super().__init__()
        self.failures = failures
        self.calls: list[list[Any]] = []

    def insert_missing(self, collection: str, docs: Any) -> Any:
        if collection == TRANSACTIONS:
            self.calls.append([d["_id"] for d in docs])
            failure = self.failures.pop(0) if self.failures else None
            if isinstance(failure, StoreRefused) and failure.refused:  # the others are inserted (unordered insert)
                super().insert_missing(collection, [d for j, d in enumerate(docs) if j not in failure.refused])
                raise failure
            if failure is not None:
                raise failure
        return super().insert_missing(collection, docs)


def test_a_chunk_the_store_could_not_take_is_written_by_the_sink():
    store = FlakyStore([None, StoreUnavailable("down")])
    batch = write([record(i, f"B{i}") for i in range(4)], Detector(parse_rules(RULES, "test rules")), store, 2)
    # the first part was written ahead, the second failed; the sink wrote the second part itself
    assert store.calls == [["B0", "B1"], ["B2", "B3"], ["B2", "B3"]]
    assert store.ids(TRANSACTIONS) == {"B0", "B1", "B2", "B3"} and store.ids(ALERTS) == {"B3:velocity"}
    assert (batch.inserted, batch.existing, batch.withdrawn) == (4, 0, [])


def test_a_document_refused_ahead_goes_to_the_dlq_as_when_the_sink_is_refused():
    refused = StoreRefused("1 document(s) refused", {1: "not storable: too large"})
    store = FlakyStore([refused])
    batch = write([record(i, f"B{i}") for i in range(4)], Detector(parse_rules(RULES, "test rules")), store, 2)
    assert store.calls == [["B0", "B1"], ["B2", "B3"]]  # nothing written twice
    assert [(d["_id"].split(":")[-1], d["reason"], d["detail"]) for d in batch.rejected] == [
        ("1", STORE_FAILED, "not storable: too large")]
    assert batch.withdrawn == ["B1"] and store.ids(TRANSACTIONS) == {"B0", "B2", "B3"}
    assert [d["_id"] for d in batch.transactions] == ["B0", "B2", "B3"]


def test_the_judged_documents_are_handed_over_once_each_in_order_every_n():
    handed: list[list[str]] = []
    batch = process_batch([record(i, f"T{i}", f"U{i % 3}") for i in range(7)], Detector(parse_rules(RULES, "t")),
                          CONFIG, now=NOW, load_state=lambda users: {},
                          on_judged=lambda docs: handed.append([d["_id"] for d in docs]), judged_every=3)
    assert handed == [["T0", "T1", "T2"], ["T3", "T4", "T5"]]  # the rest is the sink's to write
    assert [d["_id"] for d in batch.transactions] == [f"T{i}" for i in range(7)]


def test_a_part_refused_after_one_the_sink_was_refused_keeps_the_batch_order_in_the_dlq():
    """The first part's write ahead is refused naming no document (left to the sink, which is then
    refused B0); the second part is refused B3 ahead: the DLQ lists them in the batch's order, as one
    write refusing both does."""
    store = FlakyStore([StoreRefused("refused"), StoreRefused("refused", {1: "too large"}),
                        StoreRefused("refused", {0: "too large"})])
    batch = write([record(i, f"B{i}") for i in range(4)], Detector(parse_rules(RULES, "test rules")), store, 2)
    assert store.calls == [["B0", "B1"], ["B2", "B3"], ["B0", "B1"]]
    assert batch.withdrawn == ["B0", "B3"] and [d["source"]["offset"] for d in batch.rejected] == [0, 3]


def test_through_the_processor_loop_written_ahead_ends_as_without_it(settings_off):
    """Two batches through `Processor.handle` (its `begin`, `submit` and the sink's `settle`): the same
    documents, alerts, offsets and changelog as without writing ahead."""
    from tests.fixtures.doubles import BY_USER, ListPublisher, ListSource, wired
    from tests.fixtures.doubles import record as source_record
    from txnmon.services.processor import Processor

    rows = [{"transaction_id": f"T{i}", "user_id": f"U{i % 2}", "amount": 100, "payment_method": "UPI",
             "location": "Mumbai", "timestamp": f"2025-09-30T10:{i:02d}:00Z"} for i in range(6)]
    results = []
    for every in (0, 2):
        store, publisher = FlakyStore([]), ListPublisher()
        ahead = WriteAhead(store, every) if every else None
        source = ListSource([[source_record(i, r, topic=BY_USER) for i, r in enumerate(rows[:3])],
                             [source_record(3 + i, r, topic=BY_USER) for i, r in enumerate(rows[3:])]])
        sinks = [TransactionsSink(store, ahead), AlertsSink(store)]
        Processor(settings_off, wiring=wired(source, sinks, publisher, write_ahead=ahead)).run(max_idle_s=0)
        results.append((store.ids(TRANSACTIONS), store.ids(ALERTS), publisher.committed, publisher.changelog(),
                        sum(len(out.enriched) for out, _ in publisher.commits)))
        if ahead is not None:
            assert store.calls[:1] == [["T0", "T1"]] and ["T3", "T4"] in store.calls
            ahead.close()
    assert results[0] == results[1]


@pytest.fixture
def settings_off():
    return load_settings(metrics_port=0)


def test_after_the_store_could_not_be_reached_the_batchs_later_parts_are_left_to_the_sink_at_once():
    store = FlakyStore([StoreUnavailable("down")])
    batch = write([record(i, f"B{i}") for i in range(4)], Detector(parse_rules(RULES, "test rules")), store, 1)
    # one part waited out the outage; the other three were not sent ahead: the sink wrote all four
    assert store.calls == [["B0"], ["B0", "B1", "B2", "B3"]]
    assert store.ids(TRANSACTIONS) == {"B0", "B1", "B2", "B3"} and batch.inserted == 4


def test_a_refusal_naming_no_document_is_not_taken_for_stored():
    store = FlakyStore([StoreRefused("not authorized on txnmon to execute command insert")] * 3)
    with pytest.raises(StoreRefused, match="not authorized"):
        write([record(i, f"B{i}") for i in range(2)], Detector(parse_rules(RULES, "test rules")), store, 1)
    assert store.ids(TRANSACTIONS) == set()
