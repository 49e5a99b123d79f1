"""Property (#27 item 2): identical re-sends, in the same batch or a later one, however the stream is cut
into batches and wherever a batch is redone after a crash, store what the clean stream stores: the same
transactions and the same alerts. process_batch and the real transactions and alerts sinks over an
in-memory store (tests/fixtures/doubles.py), as the processor runs them."""

from __future__ import annotations

import datetime as dt
import itertools
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.doubles import MemoryStore
from txnmon.core.batch import BatchConfig, process_batch
from txnmon.core.collection_names import ALERTS, TRANSACTIONS
from txnmon.core.records import SourceRecord
from txnmon.core.rules import Detector, parse_rules
from txnmon.pipeline.runner import write_batch
from txnmon.pipeline.sinks import AlertsSink, TransactionsSink
from txnmon.settings import load_settings

NOW = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)
CONFIG = BatchConfig.from_settings(load_settings(metrics_port=0))
# built-in single-condition rules (velocity, locations, refunds, failed payments, high amount) and
# three events kept per user, so re-sends come both within and beyond the detector's history
RULES = parse_rules("state:\n  max_events_per_user: 3\n", "property rules")

transaction = st.fixed_dictionaries({
    "user_id": st.sampled_from(["U1", "U2", "U3"]),
    "minute": st.integers(0, 20),
    "amount": st.sampled_from([100, 4_500, 60_000]),
    "location": st.sampled_from(["Mumbai", "Mumbai", "Delhi", "London"]),
    "status": st.sampled_from(["success", "success", "failed"]),
})


def message(i: int, tx: dict) -> bytes:
    return json.dumps({"transaction_id": f"T{i}", "user_id": tx["user_id"], "amount": tx["amount"],
                       "payment_method": "UPI", "location": tx["location"], "status": tx["status"],
                       "timestamp": f"2025-09-30T10:{tx['minute']:02d}:00Z"}).encode()


def run(stream: list[bytes], cuts: set[int], crashes: set[int]) -> tuple[set[str], set[str]]:
    """The stream at consecutive offsets, cut before each offset in `cuts`; the batches numbered in
    `crashes` are written, then judged and written again from the state committed before them."""
    store, detector = MemoryStore(), Detector(RULES)
    sinks = [TransactionsSink(store), AlertsSink(store)]
    records = [SourceRecord("transactions.raw", 0, i, b"", v, 0) for i, v in enumerate(stream)]
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(records)), len(records)]
    users = ["U1", "U2", "U3"]
    for n, (a, b) in enumerate(itertools.pairwise(bounds)):
        committed = detector.export_packed(users)
        attempts = 2 if n in crashes else 1
        for attempt in range(attempts):
            if attempt:  # the process died after MongoDB, before the commit: a new one restores the state
                detector = Detector(RULES)
                for user, packed in committed.items():
                    detector.import_packed(user, *packed)
            batch = process_batch(records[a:b], detector, CONFIG, now=NOW, load_state=lambda u: {})
            write_batch(batch, sinks, should_stop=lambda: False)
            for tid in batch.withdrawn:
                detector.forget(batch.judgements[tid].user_id, tid)
    return store.ids(TRANSACTIONS), store.ids(ALERTS)


@settings(max_examples=150, deadline=None)
@given(txs=st.lists(transaction, min_size=1, max_size=25), data=st.data())
def test_resends_batch_cuts_and_crash_redos_store_what_the_clean_stream_stores(txs, data):
    clean = [message(i, tx) for i, tx in enumerate(txs)]
    # each re-send goes somewhere after its first copy (the first arrival order is the clean order)
    stream = list(clean)
    for i in data.draw(st.lists(st.integers(0, len(clean) - 1), max_size=2 * len(clean)), label="resent"):
        at = data.draw(st.integers(stream.index(clean[i]) + 1, len(stream)), label="at")
        stream.insert(at, clean[i])
    cuts = data.draw(st.sets(st.integers(1, len(stream))), label="cuts")
    crashes = data.draw(st.sets(st.integers(0, len(cuts))), label="crashes")
    expected = run(clean, set(), set())
    assert run(stream, cuts, crashes) == expected
    assert expected[0] == {f"T{i}" for i in range(len(txs))}
