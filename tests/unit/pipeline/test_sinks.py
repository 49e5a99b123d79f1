"""The transactions sink against an in-memory store (tests/fixtures/doubles.py): re-sends older than the
detector's history are dropped, a batch redone after a crash is written again, conflicts go to the DLQ
(#27 item 2)."""

from __future__ import annotations

import datetime as dt
import json

from tests.fixtures.doubles import MemoryStore
from txnmon.core.batch import BatchConfig, process_batch
from txnmon.core.collection_names import ALERTS, TRANSACTIONS
from txnmon.core.records import DUPLICATE_ID_CONFLICT, SourceRecord
from txnmon.core.rules import Detector, parse_rules
from txnmon.pipeline.runner import write_batch
from txnmon.pipeline.sinks import AlertsSink, TransactionsSink
from txnmon.settings import load_settings

NOW = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)
CONFIG = BatchConfig.from_settings(load_settings(metrics_port=0))
# the built-in single-condition rules (velocity counts rows: four within 10 minutes trip it), and a
# history of three events per user, so that a re-send can be older than what the detector keeps
RULES = "state:\n  max_events_per_user: 3\n"


def record(offset: int, tid: str, **extra: object) -> SourceRecord:
    row = {"transaction_id": tid, "user_id": "U1", "amount": 100, "payment_method": "UPI", "location": "Mumbai",
           "timestamp": "2025-09-30T10:00:00Z", **extra}
    return SourceRecord("transactions.raw", 0, offset, b"U1", json.dumps(row).encode(), 0)


def write(records, detector, store):
    """One batch as the processor handles it: judge, write, forget what the batch withdrew."""
    batch = process_batch(records, detector, CONFIG, now=NOW, load_state=lambda users: {})
    write_batch(batch, [TransactionsSink(store), AlertsSink(store)], should_stop=lambda: False)
    for tid in batch.withdrawn:
        detector.forget(batch.judgements[tid].user_id, tid)
    return batch


def test_a_resend_older_than_the_history_is_dropped_with_everything_it_raised():
    store, detector = MemoryStore(), Detector(parse_rules(RULES, "test rules"))
    write([record(i, f"B{i}") for i in range(4)], detector, store)
    assert store.ids(ALERTS) == {"B3:velocity"}
    assert [e.transaction_id for e in detector.state.get("U1").events] == ["B1", "B2", "B3"]  # B0 no longer kept
    # B0 again: judged (the history does not hold it), it would now see three others at its minute
    again = write([record(10, "B0")], detector, store)
    assert again.transactions == [] and again.alerts == [] and again.enriched == [] and again.dlq == []
    assert again.withdrawn == ["B0"] and (again.inserted, again.existing) == (0, 1)
    assert store.ids(ALERTS) == {"B3:velocity"}
    assert store.collections[TRANSACTIONS]["B0"]["source"]["offset"] == 0
    assert [e.transaction_id for e in detector.state.get("U1").events] == ["B1", "B2", "B3"]


def test_a_batch_redone_after_a_crash_is_written_again_with_its_alerts():
    store = MemoryStore()
    committed = Detector(parse_rules(RULES, "test rules"))
    burst = [record(i, f"B{i}") for i in range(4)]
    write(burst, committed, store)  # written; the process dies before the offsets are committed
    del store.collections[ALERTS]  # ... and before the alerts were written, this time
    redo = write(burst, Detector(parse_rules(RULES, "test rules")), store)  # from the state committed before
    assert [a["_id"] for a in redo.alerts] == ["B3:velocity"] and redo.withdrawn == []
    assert (redo.inserted, redo.existing) == (0, 4)
    assert store.ids(ALERTS) == {"B3:velocity"}


def test_other_content_under_an_id_the_history_holds_is_a_conflict_and_the_first_stays():
    store, detector = MemoryStore(), Detector(parse_rules(RULES, "test rules"))
    write([record(0, "T1", product_id="P1")], detector, store)
    # the rules' fields are equal, so the detector cannot tell: the stored copy can
    again = write([record(5, "T1", product_id="P2")], detector, store)
    assert [d["reason"] for d in again.rejected] == [DUPLICATE_ID_CONFLICT]
    assert again.rejected[0]["source"]["offset"] == 5 and again.withdrawn == []
    assert [e.transaction_id for e in detector.state.get("U1").events] == ["T1"]  # not forgotten
    assert store.collections[TRANSACTIONS]["T1"]["product_id"] == "P1"
    same = write([record(9, "T1", product_id="P1")], detector, store)
    assert same.rejected == [] and same.transactions == [] and (same.inserted, same.existing) == (0, 1)
