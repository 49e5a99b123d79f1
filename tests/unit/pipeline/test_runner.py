"""write_batch: a document MongoDB refuses for good goes to the DLQ with a reason, the batch goes on
(issue #27 item 1: a refused alert, outbox entry, case or DLQ record once stopped the partition)."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict

from txnmon.adapters.mongo.store import UpsertResult
from txnmon.core.batch import BatchConfig, process_batch
from txnmon.core.collection_names import ALERTS, REJECTED, TRANSACTIONS
from txnmon.core.records import SourceRecord
from txnmon.core.rules import Detector
from txnmon.core.rules.rulebook import parse_rules
from txnmon.errors import StoreRefused
from txnmon.pipeline import case_sink
from txnmon.pipeline.case_sink import CasesSink
from txnmon.pipeline.runner import write_batch
from txnmon.pipeline.sinks import AlertsSink, RejectedSink, TransactionsSink
from txnmon.settings import load_settings

NOW = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)


class FakeStore:
    """insert_missing as MongoStore does it: inserts what it can, names the refused ones by index."""

    def __init__(self, refuse=lambda collection, doc: False) -> None:
        self.docs: dict[str, dict] = defaultdict(dict)
        self.refuse = refuse

    def insert_missing(self, collection, docs):
        bad = {i: "document too large" for i, d in enumerate(docs) if self.refuse(collection, d)}
        dups = [d["_id"] for i, d in enumerate(docs) if i not in bad and d["_id"] in self.docs[collection]]
        for i, d in enumerate(docs):
            if i not in bad:
                self.docs[collection].setdefault(d["_id"], d)
        if bad:
            raise StoreRefused(f"{len(bad)} refused", bad, duplicate_ids=dups)
        return UpsertResult(len(docs) - len(dups), len(dups), dups)

    def find(self, collection, query=None, **_):
        ids = set((query or {}).get("_id", {}).get("$in", []))
        return [d for k, d in self.docs[collection].items() if k in ids]


def batch_of(n: int):
    records = [SourceRecord("transactions.raw", 0, i, b"U1", json.dumps(
        {"transaction_id": f"T{i}", "user_id": "U1", "amount": 100, "payment_method": "UPI", "location": "Mumbai",
         "timestamp": f"2025-09-30T10:{i:02d}:00Z"}).encode(), 0) for i in range(n)]
    config = BatchConfig.from_settings(load_settings(metrics_port=0))
    return process_batch(records, Detector(parse_rules("")), config, now=NOW, load_state=lambda users: {})


def sinks(store):
    return [TransactionsSink(store), RejectedSink(store), AlertsSink(store)]


def test_a_refused_alert_sends_its_transaction_to_the_dlq_and_the_batch_goes_on():
    batch = batch_of(8)
    alerted = sorted({a["transaction_id"] for a in batch.alerts})
    assert len(alerted) >= 3
    victim = alerted[1]
    store = FakeStore(lambda c, d: c == ALERTS and d["transaction_id"] == victim)
    write_batch(batch, sinks(store), should_stop=lambda: False)
    assert sorted(store.docs[TRANSACTIONS]) == sorted(f"T{i}" for i in range(8))  # every transaction stored
    (dead,) = store.docs[REJECTED].values()  # stored by the rejected sink's second run
    assert dead["reason"] == "store_failed" and dead["stage"] == "alerts" and "document too large" in dead["detail"]
    assert dead["source"]["offset"] == int(victim[1:])
    assert len(batch.dlq) == 1 and dict(batch.dlq[0][2])["txnmon.reason"] == b"store_failed"
    assert all(a["transaction_id"] != victim for a in batch.alerts)  # not routed nor cased
    assert {a["transaction_id"] for a in store.docs[ALERTS].values()} == set(alerted) - {victim}
    assert victim not in batch.withdrawn  # it is stored, and stays in its user's history


def test_a_refused_case_sends_its_alerts_transactions_to_the_dlq(monkeypatch):
    batch = batch_of(8)
    store = FakeStore()

    class RefusingCases:
        def __init__(self, store):
            pass

        def of_users(self, users, after):
            return []

        def upsert(self, changes):
            raise StoreRefused("1 refused", {0: "document too large"})

    monkeypatch.setattr(case_sink, "CasesRepository", RefusingCases)
    write_batch(batch, [*sinks(store), CasesSink(store, dt.timedelta(hours=1))], should_stop=lambda: False)
    alerted = {a["transaction_id"] for a in store.docs[ALERTS].values()}
    assert alerted and {d["source"]["offset"] for d in store.docs[REJECTED].values()} == {
        int(t[1:]) for t in alerted}
    assert all(d["stage"] == "cases" and "case case:U1:" in d["detail"] for d in store.docs[REJECTED].values())


def test_a_dlq_record_refused_as_it_is_is_stored_with_its_original_cut():
    records = [SourceRecord("transactions.raw", 0, 0, b"U1", b"x" * 200_000, 0)]
    config = BatchConfig.from_settings(load_settings(metrics_port=0))
    batch = process_batch(records, Detector(parse_rules("")), config, now=NOW, load_state=lambda users: {})
    store = FakeStore(lambda c, d: c == REJECTED and len(d["original"]) > RejectedSink.KEPT_ORIGINAL)
    write_batch(batch, sinks(store), should_stop=lambda: False)
    (doc,) = store.docs[REJECTED].values()
    assert doc["original_bytes"] == 200_000 and len(doc["original"]) == RejectedSink.KEPT_ORIGINAL
    assert doc["reason"] == "too_large" and "document too large" in doc["store_refused"]


def test_only_the_refused_alert_leaves_the_later_sinks_the_transactions_stored_ones_are_cased():
    """A transaction with a refused alert goes to the DLQ, but its other alerts were stored: they must
    still reach the cases and the notifications (review of #27: dead_letter dropped them all)."""
    batch = batch_of(8)
    first = batch.alerts[0]
    second = {**first, "_id": first["transaction_id"] + ":second_rule", "rule": "second_rule"}
    batch.alerts.append(second)  # a transaction two rules alerted on
    victim, refused, kept = first["transaction_id"], first["_id"], [second["_id"]]
    store = FakeStore(lambda c, d: c == ALERTS and d["_id"] == refused)
    write_batch(batch, sinks(store), should_stop=lambda: False)
    assert [d["source"]["offset"] for d in store.docs[REJECTED].values()] == [int(victim[1:])]
    left = {a["_id"] for a in batch.alerts}
    assert refused not in left and set(kept) <= left  # the stored ones go on to the cases and the outbox
    assert set(kept) <= set(store.docs[ALERTS])
