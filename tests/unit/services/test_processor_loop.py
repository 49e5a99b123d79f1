"""The processor loop without a broker: list-in, list-out doubles (tests/fixtures/doubles.py)."""

from __future__ import annotations

import threading

import pytest

from tests.fixtures.doubles import (
    BY_USER,
    RAW,
    ChangelogState,
    FlakySink,
    ListPublisher,
    ListSink,
    ListSource,
    record,
    wired,
)
from txnmon.core.records import SourceRecord
from txnmon.errors import StopRequested, StoreUnavailable
from txnmon.pipeline import retry
from txnmon.services.processor import Processor
from txnmon.settings import load_settings


def row(tid: str, minute: int, amount: float = 100, user: str = "U1") -> dict:
    return {"transaction_id": tid, "user_id": user, "amount": amount, "payment_method": "UPI",
            "location": "Mumbai", "timestamp": f"2025-09-30T10:{minute:02d}:00Z"}


@pytest.fixture
def settings():
    return load_settings(metrics_port=0)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(retry.time, "sleep", lambda s: None)


def test_raw_messages_are_rekeyed_by_user_and_invalid_ones_rejected(settings):
    source = ListSource([[record(0, row("T1", 0, user=" U7 "), topic=RAW, key=None),
                          record(1, b"not json", topic=RAW)]])
    publisher, rejected = ListPublisher(), ListSink()
    Processor(settings, wiring=wired(source, [ListSink()], publisher, route_sinks=[rejected])).run(max_idle_s=0)
    [(key, value, headers)] = publisher.forwarded
    assert key == b"U7" and b'"T1"' in value  # the normalised user id, whatever key the producer sent
    assert dict(headers)["txnmon.source.offset"] == b"0"
    assert [dict(m[2])["txnmon.reason"] for m in publisher.dlq] == [b"not_json"]
    assert [d["reason"] for b in rejected.batches for d in b.rejected] == ["not_json"]
    assert publisher.committed == {(RAW, 0): 2}


def test_judged_batches_are_written_then_committed_with_their_offsets_and_state(settings):
    source = ListSource([[record(0, row("T1", 0, 60_000))], [record(1, row("T2", 1))]])
    sink, publisher = ListSink(), ListPublisher()
    assert Processor(settings, wiring=wired(source, [sink], publisher)).run(max_idle_s=0) == 0
    assert [d["_id"] for d in sink.transactions] == ["T1", "T2"]
    assert [a["_id"] for a in sink.alerts] == ["T1:high_amount"]
    assert [offsets for _, offsets in publisher.commits] == [{(BY_USER, 0): 1}, {(BY_USER, 0): 2}]
    assert set(publisher.changelog()[0]) == {"U1"}  # the user's state went out with the offsets
    assert source.closed


def test_an_outage_is_retried_and_the_commit_waits_for_it(settings):
    source = ListSource([[record(0, row("T1", 0))]])
    flaky, after, publisher = FlakySink(failures=3), ListSink(), ListPublisher(failures=2)
    processor = Processor(settings, wiring=wired(source, [flaky, after], publisher))
    processor.run(max_idle_s=0)
    assert flaky.attempts == 4 and len(after.batches) == 1
    assert publisher.attempts == 3 and len(publisher.commits) == 1
    assert processor.metrics.retries.labels("flaky")._value.get() == 3


def test_a_stop_during_an_outage_leaves_the_batch_uncommitted(settings):
    source = ListSource([[record(0, row("T1", 0))]])
    publisher = ListPublisher()
    processor = Processor(settings, wiring=wired(source, [FlakySink(failures=10**9)], publisher))
    stopper = threading.Timer(0.2, processor.request_stop)
    stopper.start()
    assert processor.run(max_idle_s=5) == 0
    assert publisher.commits == []


def test_a_non_outage_error_is_not_retried():
    class Broken(ListSink):
        name = "broken"

        def write(self, batch):
            raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        retry.with_retry(lambda: Broken().write(None), sink="broken", should_stop=lambda: False)


def test_with_retry_gives_up_only_when_asked_to_stop():
    calls = []

    def down():
        calls.append(1)
        raise StoreUnavailable("no server")

    with pytest.raises(StopRequested):
        retry.with_retry(down, sink="mongodb", should_stop=lambda: len(calls) >= 3)
    assert len(calls) == 3


def test_a_restarted_member_judges_from_the_committed_state_only(settings, tmp_path):
    """Crash after MongoDB, before the Kafka commit: the batch comes again and meets the state as it
    was committed, not the state that already held the batch (the suppression and velocity cases)."""
    # the single-condition velocity rule (built-in settings, an empty rules file) counts rows: 5 in 5
    # minutes trip it from the 4th (the shipped velocity typology would see 1-minute-apart rows as checkouts)
    (tmp_path / "rules.yaml").write_text("")
    settings = load_settings(metrics_port=0, rules_file=tmp_path / "rules.yaml")
    burst = [record(i, row(f"B{i}", i)) for i in range(5)]  # 5 in 5 minutes: velocity from the 4th
    first_pub = ListPublisher()
    Processor(settings, wiring=wired(ListSource([burst[:3]]), [ListSink()], first_pub)).run(max_idle_s=0)
    # the second batch is written to MongoDB, then the process dies before its transaction commits
    crashed = ListPublisher(failures=10**9)
    stopper_processor = Processor(settings, wiring=wired(ListSource([burst[3:]]), [ListSink()], crashed,
                                                         state=ChangelogState(first_pub)))
    threading.Timer(0.3, stopper_processor.request_stop).start()
    stopper_processor.run(max_idle_s=5)
    assert crashed.commits == []
    # redelivered to a fresh member restored from the committed changelog
    again, sink = ListPublisher(), ListSink()
    for offsets_and_state in first_pub.commits:
        again.commits.append(offsets_and_state)
    Processor(settings, wiring=wired(ListSource([burst[3:]]), [sink], again)).run(max_idle_s=0)
    assert [a["_id"] for a in sink.alerts] == ["B3:velocity", "B4:velocity"]


class SlowFirstFetch(ListSource):
    """Empty polls before the broker's first fetch response: the source cannot tell its lag yet."""

    def __init__(self, batches, unanswered_polls: int) -> None:
        super().__init__([[]] * unanswered_polls + list(batches))
        self.unanswered = unanswered_polls

    def poll(self, timeout_ms: int, max_records: int):
        self.unanswered -= 1
        return super().poll(timeout_ms, max_records)

    def lag(self):
        return None if self.unanswered >= 0 else super().lag()  # the answering poll returns its records


def test_exit_when_idle_waits_for_the_first_fetch_so_no_record_is_left_behind(settings):
    source = SlowFirstFetch([[record(0, row("T1", 0))]], unanswered_polls=3)
    sink = ListSink()
    Processor(settings, wiring=wired(source, [sink], ListPublisher())).run(max_idle_s=0)
    assert [d["_id"] for d in sink.transactions] == ["T1"]  # before: the first empty poll ended the run


class RebalancingSource(ListSource):
    """A ListSource whose polls first announce assignment changes (as the client does inside poll):
    `changes[i]` is a list of (change, partitions) to report at the i-th poll, before its records."""

    def __init__(self, batches, changes, assignment) -> None:
        super().__init__(batches, assignment)
        self.changes = dict(changes)
        self.polls = 0
        self.listener = None

    def poll(self, timeout_ms: int, max_records: int):
        for change, partitions in self.changes.get(self.polls, ()):
            self.listener(change, partitions)
        self.polls += 1
        return super().poll(timeout_ms, max_records)


def committed_by(first: ListPublisher) -> ListPublisher:
    """A publisher whose changelog already holds what `first` committed (another member's work)."""
    again = ListPublisher()
    again.commits.extend(first.commits)
    return again


def later_rows(n: int, user: str) -> list:
    """n events months after row()'s: enough (the watermark's k = 10) to move the watermark past every
    older user's history, which then ages out of memory."""
    return [record(i, {**row(f"L{i}", 0, user=user), "timestamp": f"2026-03-30T10:{i:02d}:00Z"}, partition=0)
            for i in range(n)]


def test_a_partition_revoked_before_its_restore_is_neither_restored_nor_written(settings):
    """Assigned 0 and 1, then 1 revoked before the first batch (so before the restore): the member must
    not load partition 1's users, nor, when their history ages out, tombstone them in partition 1's
    changelog (another member owns them now)."""
    other = ListPublisher()  # the member that owned partition 1 committed U2's state there
    Processor(settings, wiring=wired(ListSource([[record(0, row("T0", 0, user="U2"), partition=1, key=b"U2")]],
                                                assignment=[(BY_USER, 1)]), [ListSink()], other)).run(max_idle_s=0)
    assert set(other.changelog()[1]) == {"U2"}
    publisher = committed_by(other)
    source = RebalancingSource([later_rows(10, "U1")],
                               changes={0: [("revoked", [(BY_USER, 1)])]},
                               assignment=[(BY_USER, 0), (BY_USER, 1)])
    processor = Processor(settings, wiring=wired(source, [ListSink()], publisher))
    source.listener = processor.on_rebalance
    processor.run(max_idle_s=0)
    mine = publisher.commits[len(other.commits):]
    assert [offsets for _, offsets in mine] == [{(BY_USER, 0): 10}]
    assert {p for out, _ in mine for p, _m in out.state} == {0}  # before: a tombstone for U2 in partition 1
    assert "U2" not in processor.detector.state and "U2" not in processor.partition_of


def test_records_of_a_partition_revoked_during_the_poll_are_left_to_its_new_owner(settings):
    """A poll can return records fetched before a revoke it also delivered: they are not judged, written
    or committed here (the new owner reads them from the committed offset)."""
    sink, publisher = ListSink(), ListPublisher()
    source = RebalancingSource([[record(0, row("T1", 0), partition=0),
                                 record(0, row("T2", 0, user="U2"), partition=1, key=b"U2")]],
                               changes={0: [("revoked", [(BY_USER, 1)])]},
                               assignment=[(BY_USER, 0), (BY_USER, 1)])
    processor = Processor(settings, wiring=wired(source, [sink], publisher))
    source.listener = processor.on_rebalance
    processor.run(max_idle_s=0)
    assert [d["_id"] for d in sink.transactions] == ["T1"]
    assert publisher.committed == {(BY_USER, 0): 1}
    assert set(publisher.changelog()) == {0}


class Loopback(ListSource):
    """The raw batches in turn; what the processor forwarded comes back as by-user records a poll later,
    as the by-user topic gives them to the member that owns its partition."""

    def __init__(self, batches, publisher):
        super().__init__(batches)
        self.publisher = publisher
        self.returned = 0

    def poll(self, timeout_ms, max_records):
        forwarded = self.publisher.forwarded[self.returned:]
        by_user = [SourceRecord(BY_USER, 0, self.returned + i, key, value, 0, tuple(headers))
                   for i, (key, value, headers) in enumerate(forwarded)]
        self.returned += len(forwarded)
        return super().poll(timeout_ms, max_records) + by_user

    def lag(self):
        return super().lag() + len(self.publisher.forwarded) - self.returned


def test_a_transaction_routed_and_judged_by_one_member_is_parsed_once(settings, monkeypatch):
    from txnmon.core import contract

    parsed = []
    real = contract.normalise
    monkeypatch.setattr(contract, "normalise", lambda obj, **kw: parsed.append(obj) or real(obj, **kw))
    publisher, sink = ListPublisher(), ListSink()
    batches = [[record(b * 5 + i, row(f"T{b}{i}", b * 5 + i), topic=RAW) for i in range(5)] for b in range(3)]
    processor = Processor(settings, wiring=wired(Loopback(batches, publisher), [sink], publisher))
    processor.run(max_idle_s=0)
    assert sorted(d["_id"] for d in sink.transactions) == sorted(f"T{b}{i}" for b in range(3) for i in range(5))
    assert len(parsed) == 15  # validated when routed, not again when judged
    assert processor.handoff.hits == 15 and len(processor.handoff) == 0
    assert processor.metrics.by_user_parses.labels("handed_over")._value.get() == 15
    assert processor.metrics.by_user_parses.labels("parsed")._value.get() == 0


class RaisingSource(ListSource):
    """A ListSource whose polls after the first `ok` raise KafkaUnavailable (a broker away mid-gather)."""

    def __init__(self, batches, ok: int) -> None:
        super().__init__(batches)
        self.ok, self.polls = ok, 0

    def poll(self, timeout_ms: int, max_records: int) -> list[SourceRecord]:
        from txnmon.errors import KafkaUnavailable

        self.polls += 1
        if self.polls > self.ok:
            raise KafkaUnavailable("broker away", retry_after=0.0)
        return super().poll(timeout_ms, max_records)


def test_after_forwarding_the_next_batch_waits_briefly_for_the_by_user_copies(settings):
    # batch 1 routes T1; the next poll has only T2's raw record (T1's by-user copy is readable only since
    # batch 1's commit): the processor gathers until T1's copy arrives and judges it in the same batch,
    # instead of leaving it a whole batch behind
    raw_t1, raw_t2 = record(0, row("T1", 0), topic=RAW), record(1, row("T2", 1), topic=RAW)
    # (route_first off: with it, T2 would then be routed in a transaction of its own, T1 judged after it)
    source = ListSource([[raw_t1], [raw_t2], [record(0, row("T1", 0))]])
    sink, publisher = ListSink(), ListPublisher()
    combined = load_settings(metrics_port=0, route_first=False)
    Processor(combined, wiring=wired(source, [sink], publisher)).run(max_idle_s=0)
    assert [offsets for _, offsets in publisher.commits] == [{(RAW, 0): 1}, {(RAW, 0): 2, (BY_USER, 0): 1}]
    assert [d["_id"] for d in sink.transactions] == ["T1"]


def test_without_the_linger_the_by_user_copy_waits_for_the_batch_after(settings):
    raw_t1, raw_t2 = record(0, row("T1", 0), topic=RAW), record(1, row("T2", 1), topic=RAW)
    source = ListSource([[raw_t1], [raw_t2], [record(0, row("T1", 0))]])
    publisher = ListPublisher()
    unlingered = load_settings(metrics_port=0, by_user_linger_ms=0)
    Processor(unlingered, wiring=wired(source, [ListSink()], publisher)).run(max_idle_s=0)
    assert len(publisher.commits) == 3


def test_a_broker_lost_while_gathering_keeps_what_was_polled(settings):
    # the consumer's position is past the records already polled: an outage mid-gather must not drop them
    raw_t1, raw_t2 = record(0, row("T1", 0), topic=RAW), record(1, row("T2", 1), topic=RAW)
    source = RaisingSource([[raw_t1], [raw_t2], [record(0, row("T1", 0))]], ok=2)
    publisher = ListPublisher()
    processor = Processor(settings, wiring=wired(source, [ListSink()], publisher))
    stopper = threading.Timer(0.5, processor.request_stop)
    stopper.start()
    processor.run(max_idle_s=None)
    stopper.cancel()
    assert [offsets for _, offsets in publisher.commits] == [{(RAW, 0): 1}, {(RAW, 0): 2}]


def test_the_promoted_model_scores_each_batch_and_a_new_promotion_applies_from_the_next(settings):
    """The loop checks the promotion between batches: the first batch is judged without a model (none
    promoted), the second with the one promoted meanwhile; its version is stored with each verdict."""
    from txnmon.services.model_watcher import ModelWatcher

    class Flat:
        version = "rm-flat"

        def score(self, rows):
            return [0.25] * len(rows)

        def contributions(self, rows):
            return [[0.0] * (len(r) + 1) for r in rows]

    promoted: list[str | None] = [None]
    source = ListSource([[record(0, row("T1", 0, 60_000))], [record(1, row("T2", 1, 60_000))]])
    sink = ListSink()
    # the shipped rules do not weigh model_score: the scores are stored only when asked for
    settings = load_settings(metrics_port=0, model_shadow_scoring=True)
    processor = Processor(settings, wiring=wired(source, [sink], ListPublisher()))
    processor.model = ModelWatcher(lambda: promoted[0], lambda v: Flat(), every_s=0.0)
    original = processor.handle

    def handle(records, wired_):
        result = original(records, wired_)
        promoted[0] = "rm-flat"  # promoted while the first batch was written
        return result

    processor.handle = handle  # type: ignore[method-assign]
    processor.run(max_idle_s=0)
    docs = {d["_id"]: d for d in sink.transactions}
    assert "model" not in docs["T1"] and docs["T2"]["model"] == {"version": "rm-flat", "score": 0.25}
    alerts = {a["_id"]: a for a in sink.alerts}
    assert "model_version" not in alerts["T1:high_amount"] and alerts["T2:high_amount"]["model_version"] == "rm-flat"


def test_a_started_member_loads_the_promoted_model_before_its_first_batch_through_outages(settings):
    """Issue 32: a member restored after a crash must not judge its first batch (a retry of one judged
    with the model) without the promoted model because the registry or the artifact was briefly
    unavailable: start-up waits for it, retrying, as it waits for Kafka and MongoDB."""
    from txnmon.errors import ServiceUnavailable
    from txnmon.services.model_watcher import ModelWatcher

    class Flat:
        version = "rm-flat"

        def score(self, rows):
            return [0.25] * len(rows)

        def contributions(self, rows):
            return [[0.0] * (len(r) + 1) for r in rows]

    failures = {"pointer": 2, "artifact": 1}

    def promoted():
        if failures["pointer"]:
            failures["pointer"] -= 1
            raise StoreUnavailable("mongodb down")
        return "rm-flat"

    def load(version):
        if failures["artifact"]:
            failures["artifact"] -= 1
            raise ServiceUnavailable("artifact store down")
        return Flat()

    source = ListSource([[record(0, row("T1", 0, 60_000))]])
    sink = ListSink()
    settings = load_settings(metrics_port=0, model_shadow_scoring=True)  # the shipped rules do not weigh it
    processor = Processor(settings, wiring=wired(source, [sink], ListPublisher()))
    processor.model = ModelWatcher(promoted, load, every_s=3600.0)
    processor.run(max_idle_s=0)
    [doc] = sink.transactions
    assert doc["model"] == {"version": "rm-flat", "score": 0.25}
    assert failures == {"pointer": 0, "artifact": 0}


def test_a_promoted_model_is_not_run_when_no_typology_weighs_its_signal(settings):
    """Issue 32: scoring costs CPU in every batch; with rules that do not weigh `model_score` (the shipped
    ones) it changes no verdict, so it is skipped unless MODEL_SHADOW_SCORING asks for the scores."""
    from txnmon.services.model_watcher import ModelWatcher

    class Counting:
        version = "rm-count"
        calls = 0

        def score(self, rows):
            Counting.calls += 1
            return [0.5] * len(rows)

        def contributions(self, rows):
            return [[0.0] * (len(r) + 1) for r in rows]

    def run(s):
        sink = ListSink()
        processor = Processor(s, wiring=wired(ListSource([[record(0, row("T1", 0))]]), [sink], ListPublisher()))
        processor.model = ModelWatcher(lambda: "rm-count", lambda v: Counting(), every_s=0.0)
        processor.run(max_idle_s=0)
        return sink.transactions[0]

    assert "model_score" not in Processor(settings).detector.ruleset.used_signals()
    doc = run(settings)
    assert Counting.calls == 0 and "model" not in doc
    doc = run(load_settings(metrics_port=0, model_shadow_scoring=True))
    assert Counting.calls == 1 and doc["model"] == {"version": "rm-count", "score": 0.5}


def test_a_poll_with_raw_and_by_user_records_routes_first_and_judges_the_copies_with_them(settings):
    # T1's by-user copy and T2's raw record arrive in one poll: T2 is routed in its own transaction, and its
    # copy (readable from that commit on) is judged in the same batch as T1's, not one batch later
    source = ListSource([[record(0, row("T2", 1), topic=RAW), record(0, row("T1", 0))], [record(1, row("T2", 1))]])
    sink, publisher = ListSink(), ListPublisher()
    Processor(settings, wiring=wired(source, [sink], publisher)).run(max_idle_s=0)
    assert [offsets for _, offsets in publisher.commits] == [{(RAW, 0): 1}, {(BY_USER, 0): 2}]
    assert [sorted(d["_id"] for d in b.transactions) for b in sink.batches if b.transactions] == [["T1", "T2"]]


def test_route_first_off_routes_and_judges_in_one_batch(settings):
    source = ListSource([[record(0, row("T2", 1), topic=RAW), record(0, row("T1", 0))], [record(1, row("T2", 1))]])
    sink, publisher = ListSink(), ListPublisher()
    combined = load_settings(metrics_port=0, route_first=False)
    Processor(combined, wiring=wired(source, [sink], publisher)).run(max_idle_s=0)
    assert [offsets for _, offsets in publisher.commits] == [{(RAW, 0): 1, (BY_USER, 0): 1}, {(BY_USER, 0): 2}]


def test_records_polled_again_after_a_rebalance_while_gathering_are_judged_once(settings):
    # the gathering poll revokes and assigns every partition again (the position goes back to the committed
    # offsets) and returns T1's by-user record, already polled before, with T2's
    everything = [(RAW, 0), (BY_USER, 0)]
    again = [record(0, row("T1", 0)), record(1, row("T2", 1))]
    source = RebalancingSource([[record(0, row("T3", 2), topic=RAW), record(0, row("T1", 0))], again],
                               changes={1: [("revoked", everything), ("assigned", everything)]}, assignment=everything)
    sink, publisher = ListSink(), ListPublisher()
    processor = Processor(settings, wiring=wired(source, [sink], publisher))
    source.listener = processor.on_rebalance
    processor.run(max_idle_s=0)
    assert sorted(d["_id"] for d in sink.transactions) == ["T1", "T2"]
    assert [b.consumed for b in sink.batches if b.consumed] == [2]  # T1's record counted once, not twice
    assert publisher.commits[-1][1] == {(BY_USER, 0): 2}


def test_the_heap_left_after_start_up_is_frozen_out_of_full_collections(settings):
    import gc

    gc.unfreeze()
    try:
        Processor(settings, wiring=wired(ListSource([]), [ListSink()], ListPublisher())).run(max_idle_s=0)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_processor_collects_the_young_generation_less_often_and_never_lowers_a_threshold(settings):
    import gc

    from txnmon.services.collector import YOUNG_THRESHOLD

    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        Processor(settings, wiring=wired(ListSource([]), [ListSink()], ListPublisher())).run(max_idle_s=0)
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
        gc.set_threshold(50_000, 10, 10)
        Processor(settings, wiring=wired(ListSource([]), [ListSink()], ListPublisher())).run(max_idle_s=0)
        assert gc.get_threshold()[0] == 50_000
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_a_full_poll_is_routed_and_judged_in_one_batch(settings):
    # a backlog: the split's second commit would cost throughput and save no wait
    full = load_settings(metrics_port=0, batch_max_records=2)
    source = ListSource([[record(0, row("T2", 1), topic=RAW), record(0, row("T1", 0))]])
    publisher = ListPublisher()
    Processor(full, wiring=wired(source, [ListSink()], publisher)).run(max_idle_s=0)
    assert [offsets for _, offsets in publisher.commits] == [{(RAW, 0): 1, (BY_USER, 0): 1}]
