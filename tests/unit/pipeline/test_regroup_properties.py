"""Property (#27, Done when): a redelivery to a new consumer group (an operator's offset reset) stores
what the first pass stored. The new group reads the by-user topic from its start, the first pass's
records (same raw source, same by-user offset as their stored copies), then the raw topic re-keyed
again behind them (same raw source, new by-user offsets), with the users' state restored from the
changelog as the first pass left it. process_batch and the real sinks over an in-memory store."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fixtures.doubles import MemoryStore
from tests.unit.pipeline.test_resend_properties import CONFIG, NOW, RULES, message, transaction
from txnmon.core.batch import process_batch
from txnmon.core.collection_names import ALERTS, SUPPRESSED_ALERTS, TRANSACTIONS
from txnmon.core.records import SourceRecord
from txnmon.core.rules import Detector
from txnmon.pipeline.runner import write_batch
from txnmon.pipeline.sinks import AlertsSink, TransactionsSink

USERS = ["U1", "U2", "U3"]


def by_user(offset: int, raw_offset: int, value: bytes) -> SourceRecord:
    headers = (("txnmon.source.topic", b"transactions.raw"), ("txnmon.source.partition", b"0"),
               ("txnmon.source.offset", str(raw_offset).encode()))
    return SourceRecord("transactions.by_user", 0, offset, b"", value, 0, headers)


def run(store: MemoryStore, detector: Detector, records: list[SourceRecord], cuts: set[int]) -> None:
    sinks = [TransactionsSink(store), AlertsSink(store)]
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(records)), len(records)]
    for a, b in itertools.pairwise(bounds):
        batch = process_batch(records[a:b], detector, CONFIG, now=NOW, load_state=lambda u: {})
        write_batch(batch, sinks, should_stop=lambda: False)
        for tid in batch.withdrawn:
            detector.forget(batch.judgements[tid].user_id, tid)


def stored(store: MemoryStore) -> tuple[set[str], ...]:
    return store.ids(TRANSACTIONS), store.ids(ALERTS), store.ids(SUPPRESSED_ALERTS)


@settings(max_examples=300, deadline=None)
@given(txs=st.lists(transaction, min_size=1, max_size=25), data=st.data())
def test_a_redelivery_to_a_new_group_stores_what_the_first_pass_stored(txs, data):
    values = [message(i, tx) for i, tx in enumerate(txs)]
    first = [by_user(i, i, v) for i, v in enumerate(values)]
    store, detector = MemoryStore(), Detector(RULES)
    run(store, detector, first, data.draw(st.sets(st.integers(1, len(first))), label="first cuts"))
    expected = stored(store)

    restored = Detector(RULES)  # a member of the new group: the state as the changelog holds it
    for user, packed in detector.export_packed(USERS).items():
        restored.import_packed(user, *packed)
    again = first + [by_user(len(first) + i, i, v) for i, v in enumerate(values)]
    run(store, restored, again, data.draw(st.sets(st.integers(1, len(again))), label="redelivery cuts"))
    assert stored(store) == expected
