"""A dropped re-send leaves the original's suppression entry in place (review of #27 item 2): forgetting
the copy once deleted the entry it had overwritten with an equal one, so the next alert of that rule
within `suppress_for` was raised instead of suppressed."""

from __future__ import annotations

import datetime as dt
import json

from tests.fixtures.doubles import MemoryStore
from txnmon.core.batch import BatchConfig, process_batch
from txnmon.core.collection_names import ALERTS, SUPPRESSED_ALERTS
from txnmon.core.records import SourceRecord
from txnmon.core.rules import Detector, parse_rules
from txnmon.pipeline.runner import write_batch
from txnmon.pipeline.sinks import AlertsSink, TransactionsSink
from txnmon.settings import load_settings

NOW = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)
CONFIG = BatchConfig.from_settings(load_settings(metrics_port=0))
# two events kept per user: the re-send of A below is older than the history, so it is judged and dropped
RULES = parse_rules("state:\n  max_events_per_user: 2\nrules:\n  high_amount:\n    suppress_for: 1h\n", "r")


def message(tid: str, minute: int, amount: float = 100) -> bytes:
    return json.dumps({"transaction_id": tid, "user_id": "U1", "amount": amount, "payment_method": "UPI",
                       "location": "Mumbai", "timestamp": f"2025-09-30T10:{minute:02d}:00Z"}).encode()


def run(batches: list[list[bytes]]) -> tuple[list[str], list[str]]:
    store, detector = MemoryStore(), Detector(RULES)
    sinks = [TransactionsSink(store), AlertsSink(store)]
    offset = 0
    for values in batches:
        records = []
        for value in values:
            records.append(SourceRecord("transactions.raw", 0, offset, b"", value, 0))
            offset += 1
        batch = process_batch(records, detector, CONFIG, now=NOW, load_state=lambda users: {})
        write_batch(batch, sinks, should_stop=lambda: False)
        for tid in batch.withdrawn:  # as the processor does after writing
            detector.forget(batch.judgements[tid].user_id, tid, batch.judgements[tid])
    return sorted(store.ids(ALERTS)), sorted(store.ids(SUPPRESSED_ALERTS))


def test_a_dropped_resend_keeps_the_originals_suppression_window():
    first = [message("A", 0, 60_000), message("B", 1), message("C", 2)]
    clean = run([first, [message("D", 5, 60_000)]])
    assert clean == (["A:high_amount"], ["D:high_amount"])
    assert run([first, [message("A", 0, 60_000)], [message("D", 5, 60_000)]]) == clean
