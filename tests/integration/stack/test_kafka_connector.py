"""The confluent-kafka (librdkafka) connector against the real local broker: every public operation.

Topics are created and deleted with the module under test (not the old connector's fixture); each
test has its own topics and consumer groups, so it can run while others use the same broker.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, TopicPartition

from txnmon.adapters import kafka as kc
from txnmon.core.records import SourceRecord
from txnmon.errors import CommitRefused, KafkaUnavailable, MessageRefused, RetryableError, TopicMissing
from txnmon.settings import Settings, load_settings

pytestmark = pytest.mark.integration


def _tagged(**overrides: object) -> Settings:
    tag = uuid.uuid4().hex[:10]
    values: dict[str, object] = {
        "topic_raw": f"test-ck-{tag}.raw",
        "topic_enriched": f"test-ck-{tag}.enriched",
        "topic_dlq": f"test-ck-{tag}.dlq",
        "topic_by_user": f"test-ck-{tag}.by_user",
        "topic_state": f"test-ck-{tag}.state",
        "consumer_group": f"test-ck-{tag}",
        "mongo_db": f"txnmon_test_{tag}",
        "metrics_port": 0,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def make_settings(stack: Settings) -> Iterator[Callable[..., Settings]]:
    """Isolated settings whose three topics are created (and deleted after) by the new connector."""
    made: list[Settings] = []

    def make(create_topics: bool = True, **overrides: object) -> Settings:
        settings = _tagged(**overrides)
        made.append(settings)
        if create_topics:
            kc.ensure_topics(settings)
        return settings

    yield make
    for settings in made:
        topics = list(settings.pipeline_topics)
        existing = [t.name for t in kc.describe_topics(settings, topics)]
        if existing:
            kc.delete_topics(settings, existing)


@pytest.fixture
def s(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


def _read(settings: Settings, topic: str, expected: int, timeout: float = 15.0, **overrides: object
          ) -> list[SourceRecord]:
    """A group-less consumer's records of `topic` until `expected` arrived, plus what follows within 0.5 s."""
    consumer = kc.make_consumer(settings, topic, group_id=None, **overrides)
    out: list[SourceRecord] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            out.extend(kc.poll_records(consumer, 200, 10_000))
        out.extend(kc.poll_records(consumer, 500, 10_000))  # anything beyond `expected` is a bug
    finally:
        consumer.close()
    return out


# --- configuration -----------------------------------------------------------------------------


def test_client_config_maps_settings_to_librdkafka_keys(stack: Settings):
    cfg = kc.client_config(load_settings(
        kafka_bootstrap_servers="b1:9093,b2:9093", kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="svc", kafka_sasl_password="pw", kafka_ssl_cafile="/ca.pem",
        kafka_ssl_certfile="/cert.pem", kafka_ssl_keyfile="/key.pem", kafka_bootstrap_timeout_ms=4000))
    assert {k: v for k, v in cfg.items() if k != "logger"} == {
        "bootstrap.servers": "b1:9093,b2:9093", "security.protocol": "sasl_ssl", "sasl.mechanism": "PLAIN",
        "sasl.username": "svc", "sasl.password": "pw", "ssl.ca.location": "/ca.pem",
        "ssl.certificate.location": "/cert.pem", "ssl.key.location": "/key.pem",
        "socket.connection.setup.timeout.ms": 4000, "allow.auto.create.topics": False,
    }
    plain = kc.client_config(stack)
    assert plain["security.protocol"] == "plaintext" and not any(k.startswith(("sasl", "ssl")) for k in plain)


def test_overrides_use_librdkafka_names_and_unknown_ones_are_refused(stack: Settings):
    # the overrides callers pass today
    kc.make_producer(stack, **{"linger.ms": 0, "message.max.bytes": 2_000_000, "queue.buffering.max.ms": 1}).close()
    kc.make_consumer(stack, group_id=None, **{"max.poll.interval.ms": 600_000}).close()
    # kafka-python's names are not translated: the client refuses them, nothing is ignored silently
    with pytest.raises(kc.KafkaError, match="linger_ms"):
        kc.make_producer(stack, linger_ms=0)
    with pytest.raises(kc.KafkaError, match="max_request_size"):
        kc.make_transactional_producer(stack, "never", max_request_size=2_000_000)
    with pytest.raises(kc.KafkaError, match="max_poll_interval_ms"):
        kc.make_consumer(stack, group_id=None, max_poll_interval_ms=600_000)


def test_unreachable_broker_is_kafka_unavailable(make_settings: Callable[..., Settings]):
    dead = _tagged(kafka_bootstrap_servers="127.0.0.1:1", kafka_bootstrap_timeout_ms=300)
    started = time.monotonic()
    calls: list[Callable[[], object]] = [
        lambda: kc.make_admin(dead),
        lambda: kc.make_producer(dead),
        lambda: kc.make_transactional_producer(dead, "never"),
        lambda: kc.make_consumer(dead, group_id=None),
        lambda: kc.ensure_topics(dead),
        lambda: kc.describe_topics(dead, [dead.topic_raw]),
        lambda: kc.require_topics(dead, dead.topic_raw),
        lambda: kc.end_offsets(dead, dead.topic_raw),
        lambda: kc.committed_offsets(dead, dead.consumer_group, dead.topic_raw),
        lambda: kc.consumer_lag(dead, dead.consumer_group, dead.topic_raw),
        lambda: kc.delete_topics(dead, [dead.topic_raw]),
        lambda: kc.open_window(dead, dead.topic_raw, 0, 1),
        lambda: kc.GroupMember(dead, [dead.topic_raw], dead.consumer_group, lambda *_: None),
    ]
    for call in calls:
        with pytest.raises(KafkaUnavailable, match=r"127\.0\.0\.1:1") as info:
            call()
        assert isinstance(info.value, RetryableError)
    assert time.monotonic() - started < 10


# --- topics ------------------------------------------------------------------------------------


def test_offsets_are_read_right_after_the_topics_are_created(make_settings: Callable[..., Settings]):
    """For a moment after creation the broker answers NOT_LEADER_FOR_PARTITION (it killed a `make bench`
    run at its restore step): the reads wait it out instead of raising."""
    for _ in range(3):
        s = make_settings()
        empty = dict.fromkeys(range(s.topic_partitions), 0)
        assert {t: kc.end_offsets(s, t) for t in s.pipeline_topics} == dict.fromkeys(s.pipeline_topics, empty)
        assert kc.describe_topics(s, [s.topic_state]) == [kc.TopicInfo(s.topic_state, s.topic_partitions)]


def test_topics_are_created_once_described_required_and_deleted(make_settings: Callable[..., Settings]):
    s = make_settings(create_topics=False)
    topics = list(s.pipeline_topics)
    assert sorted(kc.ensure_topics(s)) == sorted(topics)
    assert kc.ensure_topics(s) == []
    assert kc.ensure_topics(s, [s.topic_raw + ".one"], partitions=1) == [s.topic_raw + ".one"]
    infos = kc.describe_topics(s, [s.topic_raw, "no-such-topic-" + uuid.uuid4().hex, s.topic_raw + ".one"])
    assert infos == [kc.TopicInfo(s.topic_raw, 3), kc.TopicInfo(s.topic_raw + ".one", 1)]
    kc.require_topics(s, *topics)
    with pytest.raises(TopicMissing, match="nope-"):
        kc.require_topics(s, s.topic_raw, "nope-" + uuid.uuid4().hex)
    assert kc.end_offsets(s, s.topic_raw) == {0: 0, 1: 0, 2: 0}
    assert kc.end_offsets(s, "no-such-topic-" + uuid.uuid4().hex) == {}
    kc.delete_topics(s, [s.topic_raw + ".one"])
    assert kc.describe_topics(s, [s.topic_raw + ".one"]) == []
    with pytest.raises(kc.KafkaError):
        kc.delete_topics(s, [s.topic_raw + ".one"])  # gone already
    with pytest.raises(TopicMissing):
        kc.open_window(s, "no-such-topic-" + uuid.uuid4().hex, 0, 1)
    with pytest.raises(TopicMissing):
        kc.GroupMember(s, [s.topic_raw, "no-such-topic-" + uuid.uuid4().hex], s.consumer_group, lambda *_: None,
                       wait_s=0.5)


# --- producing and consuming -------------------------------------------------------------------


def test_round_trip_with_keys_headers_and_empty_values(s: Settings):
    producer = kc.make_producer(s)
    assert kc.send_all(producer, s.topic_raw, [(f"U{i % 4}".encode(), b'{"n": %d}' % i) for i in range(40)]) == 40
    batch = [(b"H", b"with-headers", [("trace", b"t-1"), ("kind", b"x")]), (None, b"no-key", None),
             (b"T", None, None)]  # a tombstone: consumed as b""
    assert kc.send_confirmed(producer, s.topic_raw, batch) == []  # type: ignore[arg-type]
    producer.close()
    assert sum(kc.end_offsets(s, s.topic_raw).values()) == 43

    records = _read(s, s.topic_raw, 43)
    assert len(records) == 43 and all(isinstance(r, SourceRecord) for r in records)
    # one key always lands on one partition: per-user order is what the rules depend on
    parts: dict[bytes | None, set[int]] = {}
    for r in records:
        parts.setdefault(r.key, set()).add(r.partition)
    assert all(len(p) == 1 for k, p in parts.items() if k is not None)
    # ... and the partition the Java client and kafka-python choose (murmur2): a port moves no user
    producer = kc.make_producer(s)
    kc.send_all(producer, s.topic_dlq, [(k, b"v") for k in (b"U000", b"U001", b"U004", b"hello")])
    producer.close()
    assert {r.key: r.partition for r in _read(s, s.topic_dlq, 4)} == {b"U000": 2, b"U001": 0, b"U004": 1, b"hello": 0}
    by_value = {r.value: r for r in records}
    assert by_value[b"with-headers"].headers == (("trace", b"t-1"), ("kind", b"x"))
    assert by_value[b"no-key"].key is None and by_value[b"no-key"].headers == ()
    assert next(r for r in records if r.key == b"T").value == b""
    now_ms = time.time() * 1000
    assert all(now_ms - 60_000 < r.timestamp_ms <= now_ms + 1000 for r in records)
    for p in range(3):  # offsets are dense and ordered per partition
        offsets = [r.offset for r in records if r.partition == p]
        assert offsets == list(range(len(offsets)))


def test_send_confirmed_refuses_oversized_messages_and_delivers_the_others(s: Settings):
    big = os.urandom(1_200_000)  # incompressible: above the 1 MiB limit even after lz4
    producer = kc.make_producer(s)
    with pytest.raises(MessageRefused) as info:
        kc.send_confirmed(producer, s.topic_raw, [(b"a", b"ok-0", None), (b"b", big, None), (b"c", b"ok-2", None)])
    assert list(info.value.refused) == [1] and "SIZE_TOO_LARGE" in info.value.refused[1]
    assert info.value.failed == []
    producer.close()
    # a client allowed larger requests sends it: the broker refuses it (delivery report), not the client
    roomy = kc.make_producer(s, **{"message.max.bytes": 2_000_000})
    with pytest.raises(MessageRefused) as info:
        kc.send_confirmed(roomy, s.topic_raw, [(b"d", b"ok-3", None), (b"e", big, None)])
    assert list(info.value.refused) == [1] and "TOO_LARGE" in info.value.refused[1]
    roomy.close()
    assert sorted(r.value for r in _read(s, s.topic_raw, 3)) == [b"ok-0", b"ok-2", b"ok-3"]


def test_send_confirmed_survives_a_full_local_queue(s: Settings):
    producer = kc.make_producer(s, **{"queue.buffering.max.messages": 100})  # BufferError every 100
    assert kc.send_confirmed(producer, s.topic_raw, [(None, b"m%d" % i, None) for i in range(2_000)]) == []
    producer.close()
    assert sum(kc.end_offsets(s, s.topic_raw).values()) == 2_000


# --- the processor's source: a group member --------------------------------------------------


def _committed_soon(settings: Settings, topic: str, expected: dict[int, int], timeout: float = 10.0
                    ) -> dict[int, int]:
    """The group's committed offsets once they are `expected` (or the timeout passed): offsets committed
    in a transaction show once the coordinator has written the transaction's markers, soon after."""
    deadline = time.monotonic() + timeout
    found = kc.committed_offsets(settings, settings.consumer_group, topic)
    while found != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        found = kc.committed_offsets(settings, settings.consumer_group, topic)
    return found


def _poll_until(sources: list[kc.GroupMember], done: Callable[[], bool], timeout: float,
                into: dict[int, list[SourceRecord]] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        for i, src in enumerate(sources):
            records = src.poll(100, 1000)
            if into is not None:
                into.setdefault(i, []).extend(records)


def test_two_members_split_partitions_commit_and_lag_then_a_lost_member_is_refused(s: Settings):
    producer = kc.make_producer(s)
    kc.send_confirmed(producer, s.topic_raw, [(None, b"m%d" % i, None) for i in range(30)])
    producer.close()
    ends = kc.end_offsets(s, s.topic_raw)
    assert sum(ends.values()) == 30 and all(ends.values())  # keyless: spread over all 3 partitions

    events: dict[str, list[tuple[str, list[int]]]] = {"a": [], "b": []}
    owned: dict[str, list[int]] = {"a": [], "b": []}
    got: dict[int, list[SourceRecord]] = {}  # per member: what it polled since its latest assignment

    def listener(name: str) -> Callable[[str, list[tuple[str, int]]], None]:
        def on_change(change: str, assigned: list[tuple[str, int]]) -> None:
            assert {t for t, _ in assigned} <= {s.topic_raw}
            partitions = [p for _, p in assigned]
            events[name].append((change, partitions))
            owned[name] = partitions if change == "assigned" else []
            got[0 if name == "a" else 1] = []  # runs inside poll, before that poll's records are returned
        return on_change

    # each member commits its offsets in transactions of its own producer, as the processor does;
    # made first, so that no member stops polling while one starts
    txps = [kc.make_transactional_producer(s, f"txnmon-test-{uuid.uuid4().hex[:8]}") for _ in range(2)]
    # short timeouts: member a is dropped from the group 6 s after it stops polling
    fast = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "max.poll.interval.ms": 6000}
    a = kc.GroupMember(s, [s.topic_raw], s.consumer_group, listener("a"), **fast)
    b = None
    try:
        _poll_until([a], lambda: owned["a"] == [0, 1, 2], 20)
        b = kc.GroupMember(s, [s.topic_raw], s.consumer_group, listener("b"), **fast)
        _poll_until([a, b], lambda: bool(owned["a"]) and bool(owned["b"]), 20, got)
        assert sorted(owned["a"] + owned["b"]) == [0, 1, 2]
        assert ("revoked", [0, 1, 2]) in events["a"]  # a gave its partitions back before the split
        assert events["b"][-1] == ("assigned", owned["b"])

        # each member reads its own partitions (from the start: nothing was committed), then commits
        # them in a transaction
        def drained() -> bool:
            seen = [r for rs in got.values() for r in rs]
            return {p: max((r.offset + 1 for r in seen if r.partition == p), default=0) for p in ends} == ends

        _poll_until([a, b], drained, 20, got)
        for i, src in ((0, a), (1, b)):
            mine = owned["a" if i == 0 else "b"]
            assert {r.partition for r in got.get(i, [])} <= set(mine)
            kc.begin_transaction(txps[i])
            kc.commit_member_transaction(txps[i], src, {(s.topic_raw, p): ends[p] for p in mine})
            assert src.lag() == 0
        assert _committed_soon(s, s.topic_raw, ends) == ends
        assert kc.consumer_lag(s, s.consumer_group, s.topic_raw) == {0: 0, 1: 0, 2: 0}
        assert kc.committed_offsets(s, "no-such-group-" + uuid.uuid4().hex, s.topic_raw) == {}

        # a stops polling: after max.poll.interval.ms it leaves the group and b takes over everything;
        # a's transaction committing the partitions it no longer owns is refused, not written over b's,
        # and it is aborted so its output never shows
        a_had = owned["a"]
        _poll_until([b], lambda: owned["b"] == [0, 1, 2], 20)
        txp = txps[0]
        kc.begin_transaction(txp)
        assert kc.send_confirmed(txp, s.topic_enriched, [(None, b"from-a-lost", None)]) == []
        with pytest.raises(CommitRefused, match="aborted"):
            kc.commit_member_transaction(txp, a, {(s.topic_raw, p): 0 for p in a_had})
        kc.begin_transaction(txp)  # the producer goes on
        assert _read(s, s.topic_enriched, 0, timeout=0) == []
        assert kc.committed_offsets(s, s.consumer_group, s.topic_raw) == ends
        a.poll(100, 10)  # a learns it lost its partitions: reported as revoked
        assert events["a"][-1] == ("revoked", a_had)
    finally:
        a.close()
        if b is not None:
            b.close()
        for txp in txps:
            txp.close()


def test_lag_of_counts_what_an_assigned_consumer_has_not_read(s: Settings):
    producer = kc.make_producer(s)
    kc.send_all(producer, s.topic_raw, [(None, b"x")] * 12)
    producer.close()
    consumer = kc.make_consumer(s, s.topic_raw, group_id=None)
    try:
        seen: list[SourceRecord] = []
        deadline = time.monotonic() + 10
        while len(seen) < 5 and time.monotonic() < deadline:
            seen.extend(kc.poll_records(consumer, 200, 5 - len(seen)))  # batches of at most max_records
        assert len(seen) == 5
        assert kc.lag_of(consumer) == 7
    finally:
        consumer.close()


# --- transactions ------------------------------------------------------------------------------


def test_transaction_commits_output_and_input_offsets_together_and_an_abort_hides_its_output(s: Settings):
    producer = kc.make_producer(s)
    kc.send_all(producer, s.topic_raw, [(b"U%d" % (i % 3), b"in-%d" % i) for i in range(9)])
    producer.close()
    ends = kc.end_offsets(s, s.topic_raw)

    source = kc.GroupMember(s, [s.topic_raw], s.consumer_group, lambda *_: None)
    txp = kc.make_transactional_producer(s, f"txnmon-test-{uuid.uuid4().hex[:8]}")
    try:
        got: list[SourceRecord] = []
        deadline = time.monotonic() + 20
        while len(got) < 9:
            assert time.monotonic() < deadline
            got.extend(source.poll(200, 100))
        assert source.group_metadata() is not None
        next_offsets = {p: max(r.offset for r in got if r.partition == p) + 1 for p in {r.partition for r in got}}
        assert next_offsets == {p: o for p, o in ends.items() if o}

        kc.begin_transaction(txp)
        out = [(r.key, b"out-" + r.value, None) for r in got]
        assert kc.send_confirmed(txp, s.topic_enriched, out) == []
        kc.commit_member_transaction(txp, source, {(s.topic_raw, p): o for p, o in next_offsets.items()})
        assert kc.committed_offsets(s, s.consumer_group, s.topic_raw) == next_offsets

        kc.begin_transaction(txp)
        assert kc.send_confirmed(txp, s.topic_enriched, [(b"U0", b"aborted-%d" % i, None) for i in range(5)]) == []
        kc.abort_transaction(txp)
        # the next transaction after an abort commits normally, with no offsets to send
        kc.begin_transaction(txp)
        kc.send_confirmed(txp, s.topic_enriched, [(b"U1", b"after-abort", None)])
        kc.commit_member_transaction(txp, source, {})
    finally:
        txp.close()
        source.close()

    committed = _read(s, s.topic_enriched, 10)  # read_committed is the default
    assert sorted(r.value for r in committed) == sorted([b"out-in-%d" % i for i in range(9)] + [b"after-abort"])
    everything = _read(s, s.topic_enriched, 15, **{"isolation.level": "read_uncommitted"})
    assert sum(r.value.startswith(b"aborted-") for r in everything) == 5  # written, but never visible above
    assert kc.committed_offsets(s, s.consumer_group, s.topic_raw) == next_offsets  # the abort moved nothing


# --- windows -----------------------------------------------------------------------------------


def test_window_reads_the_time_range_up_to_the_offsets_captured_when_opened(s: Settings):
    base = int(time.time() * 1000) - 120_000
    producer = kc.make_producer(s)
    for i in range(30):
        producer.produce(s.topic_raw, value=b"w%d" % i, partition=i % 3, timestamp=base + i * 1000)
    assert producer.flush(10) == 0
    window = kc.open_window(s, s.topic_raw, base + 10_000, base + 20_000)
    try:
        assert window.stop_offsets == {0: 7, 1: 7, 2: 6}  # the first record at or after the end, per partition
        # written after the window was opened, with a timestamp inside it: not part of the window
        producer.produce(s.topic_raw, value=b"late", partition=0, timestamp=base + 15_000)
        assert producer.flush(10) == 0
        seen: list[SourceRecord] = []
        deadline = time.monotonic() + 15
        while not kc.window_done(window):
            assert time.monotonic() < deadline
            seen.extend(kc.poll_window(window, 200, 4))
        assert sorted(r.value for r in seen) == sorted(b"w%d" % i for i in range(10, 20))
        assert kc.poll_window(window, 100, 10) == []
    finally:
        window.consumer.close()
        producer.close()

    # a range with no messages at all is done at once
    empty = kc.open_window(s, s.topic_raw, base + 3_600_000, base + 7_200_000)
    try:
        assert kc.window_done(empty) and kc.poll_window(empty, 100, 10) == []
    finally:
        empty.consumer.close()


def _commit_offsets(consumer: Consumer, topic: str, next_offsets: dict[int, int]) -> None:
    """Set the group's committed offsets (a plain synchronous commit from a consumer that never joined)."""
    result = consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in next_offsets.items()],
                             asynchronous=False)
    assert all(tp.error is None for tp in result or ())


def test_consumer_lag_counts_records_not_transaction_markers(s: Settings):
    """A transactional topic ends each transaction with a commit marker no consumer receives: a group
    that consumed everything is one offset short of the end, and its lag must be 0, not 1."""
    topic = s.topic_by_user
    txp = kc.make_transactional_producer(s, f"txnmon-test-{uuid.uuid4().hex[:8]}")
    try:
        kc.begin_transaction(txp)
        for p, n in ((0, 4), (1, 1)):  # partition 2 stays empty
            for i in range(n):
                kc.produce_to(txp, topic, (f"u{p}-{i}".encode(), b"x", None), partition=p)
        txp.commit_transaction(30)
        assert kc.end_offsets(s, topic) == {0: 5, 1: 2, 2: 0}  # the records and one marker each

        group = kc.make_consumer(s, group_id=s.consumer_group)
        try:
            _commit_offsets(group, topic, {0: 4, 1: 1})  # after each partition's last record
            assert kc.consumer_lag(s, s.consumer_group, topic) == {0: 0, 1: 0, 2: 0}
            _commit_offsets(group, topic, {0: 1, 1: 0})
            assert kc.consumer_lag(s, s.consumer_group, topic) == {0: 3, 1: 1, 2: 0}

            # an aborted transaction's records (and its marker) are never delivered either
            kc.begin_transaction(txp)
            for i in range(3):
                kc.produce_to(txp, topic, (f"gone-{i}".encode(), b"x", None), partition=0)
            assert txp.flush(10) == 0  # written to the log, then aborted
            kc.abort_transaction(txp)
            assert kc.end_offsets(s, topic)[0] == 9
            assert kc.consumer_lag(s, s.consumer_group, topic) == {0: 3, 1: 1, 2: 0}

            # far behind (more than LAG_PROBE_MAX), the offset difference stands, markers included
            producer = kc.make_producer(s)
            for _ in range(kc.LAG_PROBE_MAX + 4):
                kc.produce_to(producer, topic, (b"k", b"x", None), partition=1)
            producer.flush(10)
            assert kc.consumer_lag(s, s.consumer_group, topic)[1] == 2 + kc.LAG_PROBE_MAX + 4

            # a transaction still open: its records count (they are on their way), and nothing waits for it
            _commit_offsets(group, topic, {0: 8})  # partition 0 read to its last marker
            kc.begin_transaction(txp)
            kc.produce_to(txp, topic, (b"open", b"x", None), partition=0)
            assert txp.flush(10) == 0
            assert kc.consumer_lag(s, s.consumer_group, topic)[0] == 1  # the open record; not the abort marker before
            kc.abort_transaction(txp)
        finally:
            group.close()
    finally:
        txp.close()
    # a group that never committed counts from the start: records, not markers
    assert kc.consumer_lag(s, "never-" + s.consumer_group, topic)[0] == 4
