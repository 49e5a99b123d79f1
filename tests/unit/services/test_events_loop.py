"""The `txnmon events` loop without a broker or a server: in-memory ports, the real judging and storing logic."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from txnmon.adapters.mongo.store import UpsertResult
from txnmon.core.collection_names import CART_EVENTS, REVIEWS, STOCK_EVENTS
from txnmon.core.records import SourceRecord
from txnmon.errors import RetryableError, StopRequested, StoreRefused, StoreUnavailable
from txnmon.pipeline import event_sinks, retry
from txnmon.services.events import EventsService
from txnmon.settings import load_settings

CARTS, STOCK, REVIEWS_TOPIC = "carts.raw", "inventory.raw", "reviews.raw"


def cart(eid: str, minute: int, user: str = "U1", **extra: Any) -> dict:
    return {"event_id": eid, "event_type": "cart_created", "user_id": user, "cart_id": f"C-{eid}",
            "timestamp": f"2025-09-30T10:{minute:02d}:00Z", **extra}


def stock(eid: str, minute: int) -> dict:
    return {"event_id": eid, "product_id": "Laptop", "location": "Mumbai", "quantity_on_hand": 5,
            "timestamp": f"2025-09-30T10:{minute:02d}:00Z", "source": "wms"}


def review(rid: str, minute: int) -> dict:
    return {"review_id": rid, "user_id": "U1", "product_id": "Laptop", "rating": 5, "text": "great",
            "timestamp": f"2025-09-30T10:{minute:02d}:00Z"}


def rec(topic: str, offset: int, value: object, partition: int = 0) -> SourceRecord:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return SourceRecord(topic, partition, offset, b"k", raw, 0)


class FakeStore:
    """insert_missing and find as MongoStore does them, over dicts."""

    def __init__(self) -> None:
        self.collections: dict[str, dict[Any, dict]] = {}

    def insert_missing(self, collection: str, docs: list[dict]) -> UpsertResult:
        stored = self.collections.setdefault(collection, {})
        dup = []
        for d in docs:
            if d["_id"] in stored:
                dup.append(d["_id"])
            else:
                stored[d["_id"]] = dict(d)
        return UpsertResult(len(docs) - len(dup), len(dup), dup)

    def find(self, collection: str, query: dict) -> list[dict]:
        ids = query["_id"]["$in"]
        return [dict(self.collections.get(collection, {})[i]) for i in ids if i in self.collections.get(collection, {})]


class FakePorts:
    def __init__(self, batches: list[list[SourceRecord]], processor_mark: dt.datetime | None = None) -> None:
        self.batches = batches
        self.all_records = [r for b in batches for r in b]
        self.store = FakeStore()
        self.rejected: dict[str, dict] = {}
        self.dlq: list = []
        self.marks: dict[str, dict[int, dict]] = {}
        self.commits: list[dict] = []
        self.calls: list[str] = []
        self.outages: dict[str, int] = {}
        self._processor_mark = processor_mark

    def _maybe_fail(self, name: str) -> None:
        self.calls.append(name)
        if self.outages.get(name, 0) > 0:
            self.outages[name] -= 1
            raise StoreUnavailable(f"{name} down")

    def poll(self, timeout_ms: int, max_records: int) -> list[SourceRecord]:
        return self.batches.pop(0) if self.batches else []

    def store_events(self, batch):
        self._maybe_fail("events")
        return event_sinks.store_events(self.store, batch)  # type: ignore[arg-type]

    def store_rejected(self, batch) -> None:
        self._maybe_fail("rejected")
        for doc in batch.rejected:
            self.rejected.setdefault(doc["_id"], doc)

    def send_dlq(self, messages) -> None:
        self._maybe_fail("dlq")
        self.dlq.extend(messages)

    def save_marks(self, topic, marks) -> None:
        self._maybe_fail("marks")
        self.marks.setdefault(topic, {}).update({p: dict(m) for p, m in marks.items()})

    def load_marks(self, topic):
        return {p: dict(m) for p, m in self.marks.get(topic, {}).items()}

    def end_offsets(self, topic):
        """The broker's end offsets: past every record this fake was given, read or not yet."""
        ends: dict[int, int] = {}
        for r in self.all_records:
            if r.topic == topic:
                ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
        return ends

    def processor_mark(self):
        return self._processor_mark

    def commit(self, offsets) -> None:
        self._maybe_fail("commit")
        self.commits.append(dict(offsets))

    def close(self) -> None:
        self.calls.append("close")


ALL = [(CARTS, 0), (CARTS, 1), (STOCK, 0), (REVIEWS_TOPIC, 0)]


def service(ports: FakePorts, analyses=(), **overrides: Any) -> EventsService:
    settings = load_settings(events_metrics_port=0, **overrides)

    def factory(svc: EventsService):
        svc.on_rebalance("assigned", ALL)
        return ports, "the-store"

    return EventsService(settings, ports=factory, analyses=analyses)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(retry.time, "sleep", lambda s: None)


def test_good_events_are_stored_by_kind_and_bad_ones_rejected_then_the_offsets_committed():
    ports = FakePorts([[rec(CARTS, 0, cart("E1", 0)), rec(CARTS, 1, b"not json"), rec(STOCK, 0, stock("S1", 1)),
                        rec(REVIEWS_TOPIC, 0, review("R1", 2)), rec(REVIEWS_TOPIC, 1, {**review("R2", 3), "rating": 9}),
                        rec(CARTS, 2, cart("E2", 4), partition=1)]])
    service(ports).run(max_idle_s=0)
    assert set(ports.store.collections[CART_EVENTS]) == {"E1", "E2"}
    assert set(ports.store.collections[STOCK_EVENTS]) == {"S1"}
    assert set(ports.store.collections[REVIEWS]) == {"R1"}
    assert ports.store.collections[CART_EVENTS]["E1"]["event_time"] == dt.datetime(2025, 9, 30, 10, 0, tzinfo=dt.UTC)
    assert {d["_id"]: d["reason"] for d in ports.rejected.values()} == {"carts.raw:0:1": "not_json",
                                                                       "reviews.raw:0:1": "bad_field"}
    assert sorted(dict(m[2])["txnmon.reason"] for m in ports.dlq) == [b"bad_field", b"not_json"]
    # every partition's offset moves past its records, bad ones included; committed after every write
    assert ports.commits == [{(CARTS, 0): 2, (STOCK, 0): 1, (REVIEWS_TOPIC, 0): 2, (CARTS, 1): 3}]
    assert ports.calls.index("commit") > max(ports.calls.index(n) for n in ("events", "rejected", "dlq", "marks"))
    assert ports.marks[CARTS][1]["next_offset"] == 3 and ports.marks[CARTS][0]["next_offset"] == 2


def test_a_redelivered_batch_changes_nothing_and_an_id_with_other_content_is_a_conflict():
    batch = [rec(CARTS, 0, cart("E1", 0)), rec(CARTS, 1, cart("E2", 1))]
    ports = FakePorts([list(batch), list(batch), [rec(CARTS, 2, cart("E1", 5, user="U9"))]])
    service(ports).run(max_idle_s=0)
    assert ports.store.collections[CART_EVENTS]["E1"]["user_id"] == "U1"  # the first is kept
    assert len(ports.store.collections[CART_EVENTS]) == 2
    assert [(d["_id"], d["reason"], d["stage"]) for d in ports.rejected.values()] == [
        ("carts.raw:0:2", "duplicate_id_conflict", "store")]
    assert len(ports.commits) == 3


def test_a_mongodb_outage_is_retried_without_losing_or_skipping_anything():
    ports = FakePorts([[rec(CARTS, 0, cart("E1", 0)), rec(CARTS, 1, b"{}")]])
    ports.outages = {"events": 2, "rejected": 1, "marks": 1}
    service(ports).run(max_idle_s=0)
    assert set(ports.store.collections[CART_EVENTS]) == {"E1"}
    assert list(ports.rejected) == ["carts.raw:0:1"]
    assert ports.commits == [{(CARTS, 0): 2}]


def test_a_stop_during_an_outage_leaves_the_batch_uncommitted():
    ports = FakePorts([[rec(CARTS, 0, cart("E1", 0))]])
    ports.outages = {"events": 10**6}
    svc = service(ports)
    svc.stop_event.set()
    svc.ports, svc.store = ports, None
    svc.on_rebalance("assigned", ALL)
    with pytest.raises(StopRequested):
        svc.handle(ports.poll(0, 10))
    assert ports.commits == []


def test_records_of_partitions_not_assigned_are_left_to_their_owner():
    ports = FakePorts([[rec(CARTS, 0, cart("E1", 0), partition=7)]])
    service(ports).run(max_idle_s=0)
    assert ports.commits == [] and CART_EVENTS not in ports.store.collections


def test_analyses_run_over_closed_time_and_one_that_raises_stops_neither_the_loop_nor_the_others():
    calls: list[tuple[str, Any, dt.datetime]] = []

    def run_broken(store, settings, *, closed_until):
        calls.append(("broken", store, closed_until))
        raise RuntimeError("boom")

    def run_fake(store, settings, *, closed_until):
        calls.append(("fake", store, closed_until))
        return {"until": closed_until}

    processor = dt.datetime(2025, 9, 30, 11, 0, tzinfo=dt.UTC)
    ports = FakePorts([[rec(CARTS, 0, cart("E1", 0)), rec(CARTS, 1, cart("E2", 30))],
                       [rec(STOCK, 0, stock("S1", 50))]], processor_mark=processor)
    svc = service(ports, analyses=(run_broken, run_fake), events_lateness_seconds=60)
    svc.run(max_idle_s=0)
    assert len(ports.commits) == 2  # the raising analysis stopped nothing
    # after batch 1: the stock partition has a record waiting and no mark yet: nothing is closed;
    # after batch 2: the slowest partition still waiting for input, carts 0 (its mark 10:00) - 60 s;
    # on exit every partition is drained and counts as quiet: the most advanced mark (stock, 10:50)
    fake = [c[2] for c in calls if c[0] == "fake"]
    assert fake == [dt.datetime(2025, 9, 30, 9, 59, tzinfo=dt.UTC), dt.datetime(2025, 9, 30, 10, 50, tzinfo=dt.UTC)]
    assert [c[0] for c in calls] == ["broken", "fake"] * 2  # the broken one is called again every time
    assert all(c[1] == "the-store" for c in calls)
    assert isinstance(svc.last_results["run_broken"], RuntimeError)


def test_the_last_run_before_exiting_waits_for_an_analysis_another_run_holds(monkeypatch):
    """A member SIGKILLed mid-walk holds its lease until the term ends: `--exit-when-idle` must not exit
    with that walk undone (it did, and the restarted service decided no abandoned cart)."""
    from txnmon.services import events as events_service

    answers = iter([RetryableError("another abandonment run is in progress", retry_after=0.05)] * 3)
    calls: list[str] = []

    def run_held(store, settings, *, closed_until):
        calls.append("held")
        answer = next(answers, None)
        if answer is not None:
            raise answer
        return {"done": closed_until}

    def run_free(store, settings, *, closed_until):
        calls.append("free")
        return {}

    processor = dt.datetime(2025, 9, 30, 11, 0, tzinfo=dt.UTC)
    ports = FakePorts([[rec(CARTS, 0, cart("E1", 0))]], processor_mark=processor)
    svc = service(ports, analyses=(run_free, run_held))
    svc.run(max_idle_s=0)
    # after the batch: both once (held is busy, not waited for); on exit: both, then held again until free
    assert calls == ["free", "held", "free", "held", "held", "held"]
    assert set(svc.last_results["run_held"]) == {"done"}  # it ran, and its summary is the last result

    # and it gives up after FINAL_BUSY_WAIT_S, so a lease that is never freed cannot hold the exit forever
    monkeypatch.setattr(events_service, "FINAL_BUSY_WAIT_S", 0.2)
    busy_calls: list[int] = []

    def run_never(store, settings, *, closed_until):
        busy_calls.append(1)
        raise RetryableError("held for good", retry_after=0.05)

    ports = FakePorts([[rec(CARTS, 0, cart("E1", 0))]], processor_mark=processor)
    svc = service(ports, analyses=(run_never,))
    svc.run(max_idle_s=0)
    assert 2 < len(busy_calls) < 20 and isinstance(svc.last_results["run_never"], RetryableError)


def test_no_analysis_runs_while_the_processor_has_no_watermark_even_when_the_input_is_idle():
    seen: list[dt.datetime] = []
    ports = FakePorts([[rec(CARTS, 0, cart("E1", 0))]], processor_mark=None)
    service(ports, analyses=(lambda store, settings, *, closed_until: seen.append(closed_until),)).run(max_idle_s=0)
    assert seen == []  # sales not stored yet must not be skipped by a walk that handles each hour once


def test_a_batch_redelivered_after_a_crash_before_its_commit_does_not_move_the_watermark():
    batch = [rec(CARTS, i, cart(f"E{i}", i)) for i in range(12)]
    ports = FakePorts([list(batch)])
    service(ports).run(max_idle_s=0)
    first = dict(ports.marks[CARTS][0])
    assert min(first["newest"]) == dt.datetime(2025, 9, 30, 10, 2, tzinfo=dt.UTC)  # the 10th newest
    # a new process (its commit was lost): restores the stored marks, then reads the same batch again
    ports.batches = [list(batch)]
    service(ports).run(max_idle_s=0)
    assert ports.marks[CARTS][0]["newest"] == first["newest"]  # its own times are not counted twice


class RefusingStore(FakeStore):
    """Refuses for good, naming no document (an OperationFailure), any write that holds the id `bad`."""

    def insert_missing(self, collection: str, docs: list[dict]) -> UpsertResult:
        if any(d["_id"] == "bad" for d in docs):
            raise StoreRefused("operation failed: document validation")
        return super().insert_missing(collection, docs)


def test_a_store_refusal_naming_no_document_sends_that_event_to_the_dlq_and_keeps_the_others():
    ports = FakePorts([[rec(CARTS, 0, cart("E1", 0)), rec(CARTS, 1, cart("bad", 1)), rec(CARTS, 2, cart("E3", 2))]])
    ports.store = RefusingStore()
    service(ports).run(max_idle_s=0)  # before the fix the process died here, and again on every restart
    assert set(ports.store.collections[CART_EVENTS]) == {"E1", "E3"}
    assert {d["_id"]: d["reason"] for d in ports.rejected.values()} == {"carts.raw:0:1": "processing_error"}
    assert [dict(m[2])["txnmon.reason"] for m in ports.dlq] == [b"processing_error"]
    assert ports.commits == [{(CARTS, 0): 3}]


def test_any_other_failure_of_the_write_sends_the_batch_events_to_the_dlq_and_the_loop_goes_on():
    ports = FakePorts([[rec(CARTS, 0, cart("E1", 0)), rec(STOCK, 0, stock("S1", 1))], [rec(CARTS, 1, cart("E2", 2))]])
    calls = []

    def broken_once(batch):
        calls.append(batch)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return event_sinks.store_events(ports.store, batch)  # type: ignore[arg-type]

    ports.store_events = broken_once  # type: ignore[method-assign]
    service(ports).run(max_idle_s=0)
    assert sorted(d["_id"] for d in ports.rejected.values()) == ["carts.raw:0:0", "inventory.raw:0:0"]
    assert {d["reason"] for d in ports.rejected.values()} == {"processing_error"}
    assert set(ports.store.collections[CART_EVENTS]) == {"E2"}
    assert len(ports.commits) == 2
