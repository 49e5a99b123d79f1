"""The risk model's per-user timelines (src/txnmon/core/feature_timeline.py): the vectors `features.compute`
gives, bit for bit, and kept from one batch to the next only while they are the user's history."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txnmon.core import feature_timeline, features, scoring
from txnmon.core.feature_timeline import Timeline, TimelineCache
from txnmon.core.rules import Detector, parse_rules
from txnmon.core.rules.history import micros
from txnmon.core.rules.packed import as_stored
from txnmon.core.rules.state import Event, event_from, pack_events
from txnmon.core.scoring import batch_features
from txnmon.settings import DEFAULT_RULES_FILE

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
_IST = dt.timezone(dt.timedelta(hours=5, minutes=30))

# a user's arrivals: minutes after T0 (mostly rising, sometimes not), amount, place (case varies), type,
# status, method, and a transaction id from a small pool (so a held id comes back now and then)
_ARRIVALS = st.lists(st.tuples(
    st.integers(0, 3_000), st.sampled_from([4_500.0, 300.0, 0.0, -0.0, 1e13, math.nan, math.inf, 41_000.0]),
    st.sampled_from(["Mumbai", "MUMBAI", "London", "Nowhere", "", "Paris, US", "Delhi"]),
    st.sampled_from(["purchase", "refund"]), st.sampled_from(["success", "failed"]),
    st.sampled_from(["", "UPI", "Card"]), st.integers(0, 40)), max_size=40)


def _bits(vector: tuple[float, ...]) -> list[str]:
    return [v.hex() for v in vector]  # bit for bit: -0.0 and 0.0 differ here


_ODD = dt.timezone(-dt.timedelta(hours=3, minutes=7, seconds=13, microseconds=5))


@settings(max_examples=300, deadline=None)
@given(held=_ARRIVALS, arrivals=_ARRIVALS, horizon_min=st.sampled_from([30, 600, 100_000]),
       most=st.sampled_from([1, 3, 10, 1_000]), ordered=st.booleans(),
       start=st.sampled_from([T0, dt.datetime(1965, 5, 1, 23, 59, 59, 999_999, tzinfo=dt.UTC)]),
       micro=st.integers(0, 59_999_999), zone=st.sampled_from([dt.UTC, _IST, _ODD]))
def test_the_timeline_gives_the_vectors_compute_gives(held, arrivals, horizon_min, most, ordered, start, micro,
                                                      zone) -> None:
    """The differential test of the stream's fast path (issue 32): for every arrival newer than its
    user's events, `Timeline.vector` is `compute` over the kept events, bit for bit, and the timeline
    keeps what the state's cuts keep (by time, then by count). Times to the µs, before 1970 too, in any zone
    (the timeline reckons in µs since the epoch, `compute` with datetimes)."""
    def event(i: int, row: tuple) -> Event:
        minute, amount, place, type_, status, method, tid = row
        at = (start + dt.timedelta(minutes=minute, microseconds=micro * (tid % 3) // 2)).astimezone(zone)
        return Event(at, f"T{tid}-{i}" if i >= 0 else f"T{tid}", place, amount, type_, status, method)

    history = sorted({e.transaction_id: as_stored(e) for e in (event(-1, r) for r in held)}.values(),
                     key=lambda e: e.key)
    horizon = dt.timedelta(minutes=horizon_min)
    line = Timeline(history, pack_events(history))
    kept = list(history)
    fast = 0
    for i, row in enumerate(sorted(arrivals) if ordered else arrivals):
        e = event(i, row)
        at = micros(e.event_time)
        if not line.newest_before(e, at):
            assert e.transaction_id in {k.transaction_id for k in kept} or not kept or \
                kept[-1].event_time >= e.event_time or f"{e.transaction_id}".encode() in pack_events(history), \
                "only a held id or a time not after the newest takes the slow path"
            continue  # the caller's slow path: not the timeline's to answer
        assert _bits(line.vector(e, at)) == _bits(features.compute(e, kept))
        stored = as_stored(e)  # as the state keeps it (in UTC), as the stream appends it
        line.append(stored, at, horizon // dt.timedelta(microseconds=1), most)
        kept.append(stored)
        kept = [k for k in kept if k.event_time >= e.event_time - horizon][-most:]
        assert line.kept(list(history)) == kept
        fast += 1
    assert fast or not arrivals or not ordered or history, "in-order arrivals after no history all take the fast path"


def _rules(small: bool):
    if not small:
        return parse_rules(DEFAULT_RULES_FILE.read_text())
    # a state cut hard by count (4 events) and by time (the rules' 1-hour window), so cuts happen every batch
    return parse_rules("version: t\nstate: {max_events_per_user: 4}\nrules: {velocity: {enabled: false}, "
                       "unusual_location: {enabled: false}, impossible_travel: {enabled: false}, "
                       "high_value_unusual_location: {enabled: false}, excessive_refunds: {enabled: false}, "
                       "repeated_failed_payments: {enabled: false}}\n")


def _tx(i: int, user: str, minute: int, amount: float = 100.0, place: str = "Mumbai", *, kind: str = "purchase",
        status: str = "success", method: str = "UPI", tid: str | None = None, zone: dt.tzinfo = dt.UTC) -> dict:
    return {"transaction_id": tid or f"T{i}", "user_id": user, "amount": amount, "location": place,
            "payment_method": method, "type": kind, "status": status,
            "event_time": (T0 + dt.timedelta(minutes=minute)).astimezone(zone)}


def _expected(detector: Detector, tx: dict) -> tuple[float, ...]:
    return features.compute(event_from(tx), detector.state.prior(tx["user_id"], event_from(tx)))


_TX = st.tuples(st.sampled_from(["U1", "U2", "U3"]), st.integers(0, 4_000), st.sampled_from([0.0, 300.0, 4_500.0]),
                st.sampled_from(["Mumbai", "MUMBAI", "London", ""]), st.sampled_from(["UPI", "Card", ""]),
                st.sampled_from(["purchase", "refund"]), st.sampled_from(["success", "failed"]),
                st.integers(0, 60), st.booleans())
# what happens to a chunk: scored then judged (as the stream does), judged without being scored, scored with only
# its first half judged (the rest failed), a user's newest transaction withdrawn, a user's history restored
_STEP = st.tuples(st.sampled_from(["scored", "scored", "scored", "unscored", "half", "withdrawn", "restored"]),
                  st.lists(_TX, min_size=1, max_size=8))


@settings(max_examples=150, deadline=None)
@given(st.lists(_STEP, min_size=1, max_size=10), st.booleans())
def test_kept_timelines_give_each_batch_the_vectors_of_the_state_before_it(steps, small):
    """Batches scored one after another by one detector, its timelines kept between them: each scored batch's
    vectors are `compute` over the state just before each transaction, whatever happened in between (a batch
    judged without scoring, one scored but half judged, a withdrawal, a restore), with repeated ids, arrivals
    out of time order, times in another zone, and cuts by time and by count."""
    detector = Detector(_rules(small))
    n = 0
    for kind, txs in steps:
        chunk = [_tx(n + i, u, m, a, loc, kind=k, status=s, method=pm, tid=f"T{n + i if tid > 40 else tid}",
                     zone=_IST if ist else dt.UTC) for i, (u, m, a, loc, pm, k, s, tid, ist) in enumerate(txs)]
        n += len(chunk)
        if kind == "scored":
            found = batch_features(detector.state, chunk)
            expected = []
            for tx in chunk:
                expected.append(_expected(detector, tx))
                detector.observe(tx)
            assert [_bits(v) for v in found] == [_bits(v) for v in expected]
        elif kind == "half":
            batch_features(detector.state, chunk)
            for tx in chunk[:len(chunk) // 2]:
                detector.observe(tx)
        elif kind == "unscored":
            for tx in chunk:
                detector.observe(tx)
        elif kind == "withdrawn":
            user = chunk[0]["user_id"]
            events = detector.state.events_of(user)
            if events:
                detector.forget(user, events[-1].transaction_id)
        else:
            user = chunk[0]["user_id"]
            detector.state.load_packed(user, pack_events(detector.state.events_of(user)[1:]), {})


def _day(users: int = 3, per_user: int = 6) -> list[dict]:
    return [_tx(i, f"U{i % users}", i * 7, 100.0 + i) for i in range(users * per_user)]


def test_a_user_seen_again_is_featurised_without_decoding_their_history(monkeypatch) -> None:
    """The point of keeping timelines (issue 32): a user's second batch reads no event from the state."""
    detector, rows = Detector(_rules(False)), _day()
    first, second = rows[:9], rows[9:]
    batch_features(detector.state, first)
    for tx in first:
        detector.observe(tx)
    expected = []
    for tx in second:
        expected.append(_expected(detector, tx))
        detector.observe(tx)
    detector = Detector(_rules(False))
    batch_features(detector.state, first)
    for tx in first:
        detector.observe(tx)
    decoded = []
    monkeypatch.setattr(type(detector.state), "events_of", lambda self, user: decoded.append(user) or [])
    assert [_bits(v) for v in batch_features(detector.state, second)] == [_bits(v) for v in expected]
    assert decoded == [], "every user's timeline was kept from the first batch"
    assert len(detector.state.follower) == 3


def test_a_timeline_is_built_again_after_a_change_it_was_not_handed(monkeypatch) -> None:
    """A transaction judged without being scored (a batch before the model was promoted) makes the user's
    timeline stale: built again from the state, with the vector of the state as it is."""
    detector, rows = Detector(_rules(False)), _day(users=1)
    batch_features(detector.state, rows[:3])
    for tx in rows[:3]:
        detector.observe(tx)
    detector.observe(rows[3])  # not scored
    assert len(detector.state.follower) == 0, "the record it was not handed dropped it"
    expected = _expected(detector, rows[4])
    assert batch_features(detector.state, rows[4:5]) == [expected]


def test_a_record_other_than_the_one_expected_drops_the_timeline() -> None:
    """A batch scored, its last transaction never judged (it failed), then another transaction judged in its
    place: the timeline expected the failed one, so it is dropped, and the next batch sees the state as it is."""
    detector, rows = Detector(_rules(False)), _day(users=1)
    batch_features(detector.state, rows[:2])
    detector.observe(rows[0])
    other = {**rows[1], "transaction_id": "X1", "amount": 9_999.0, "location": "London"}
    detector.observe(other)  # the same time and count as rows[1]: only the event itself differs
    assert len(detector.state.follower) == 0
    expected = _expected(detector, rows[2])
    assert batch_features(detector.state, rows[2:3]) == [expected]


def test_a_record_that_leaves_another_count_drops_the_timeline() -> None:
    """The state's record must leave the count of events the timeline kept (a history over the packed-size
    limit is cut by size, which a timeline does not follow): otherwise it is dropped."""
    cache = TimelineCache()
    e = Event(T0, "T1", "Mumbai", 10.0, "purchase", "success", "UPI")
    line = Timeline([], b"")
    line.append(e, micros(T0), 10**12, 100)
    cache.keep("U1", line)
    cache.recorded("U1", b"", pack_events([e, e._replace(transaction_id="T0")]), e)  # two events, one expected
    assert len(cache) == 0
    line = Timeline([], b"")
    line.append(e, micros(T0), 10**12, 100)
    cache.keep("U1", line)
    after = pack_events([e])
    cache.recorded("U1", b"", after, e)
    assert cache.usable("U1", after) is line and cache.usable("U1", pack_events([e])) is None, \
        "usable only for the very value it was recorded into"


def test_timelines_kept_are_bounded_by_their_events_least_recently_used_first() -> None:
    def line(n: int) -> Timeline:
        events = [Event(T0 + dt.timedelta(minutes=i), f"T{i}", "Mumbai", 1.0, "purchase", "success", "UPI")
                  for i in range(n)]
        return Timeline(events, pack_events(events))

    overhead = feature_timeline._OVERHEAD_EVENTS
    cache = TimelineCache(limit=2 * (4 + overhead))
    one, two = line(4), line(4)
    cache.keep("U1", one)
    cache.keep("U2", two)
    assert cache.usable("U1", one.base) is one  # U1 used: U2 is the least recently used now
    cache.keep("U3", line(4))
    assert len(cache) == 2 and cache.events == 2 * (4 + overhead)
    assert cache.usable("U2", two.base) is None and cache.usable("U1", one.base) is one
    assert cache.usable("U1", pack_events([])) is None, "only for the very value it equals"
    cache.keep("U4", line(100))  # over the bound alone: kept, the others let go
    assert len(cache) == 1 and cache.events == 100 + overhead
    cache.forget("U4")
    assert cache.events == 0


def test_new_users_timelines_are_counted_with_their_events_and_stay_bounded() -> None:
    """Batch after batch of users never seen again: each timeline is counted with the events its batch
    appended (and its own overhead), so the kept ones stay within the bound."""
    detector = Detector(_rules(False))
    cache = TimelineCache(limit=5_000)
    detector.state.follower = cache
    for b in range(20):
        chunk = [_tx(b * 1_000 + i, f"B{b}-U{i % 200}", b * 60 + i // 200) for i in range(1_000)]
        batch_features(detector.state, chunk)
        for tx in chunk:
            detector.observe(tx)
        assert cache.events <= cache.limit
    assert 0 < len(cache) <= 5_000 // (5 + feature_timeline._OVERHEAD_EVENTS)
    assert cache.events == sum(len(line.times) + feature_timeline._OVERHEAD_EVENTS for line in cache._lines.values())
    assert all(not line.added for line in cache._lines.values()), "recorded events are let go of"


def test_a_long_run_of_one_user_gives_the_vectors_compute_gives_as_the_timeline_lets_go_of_cut_events() -> None:
    """Hundreds of transactions of one user in batches of 5, cut to 10 events: the timeline lets go of the
    cut events now and then (`begin`), and every vector stays `compute`'s."""
    rules = parse_rules("version: t\nstate: {max_events_per_user: 10}\nrules: {}\n")
    detector = Detector(rules)
    # places and methods that come and go, so letting go of the wrong event's would show
    rows = [_tx(i, "U1", i, 10.0 + i % 7, ["Mumbai", "London", "Delhi"][i // 40 % 3], method=f"M{i // 15}",
                kind=["purchase", "refund"][i % 5 == 0], status=["success", "failed"][i % 3 == 0]) for i in range(300)]
    for start in range(0, len(rows), 5):
        chunk = rows[start:start + 5]
        found = batch_features(detector.state, chunk)
        expected = []
        for tx in chunk:
            expected.append(_expected(detector, tx))
            detector.observe(tx)
        assert [_bits(v) for v in found] == [_bits(v) for v in expected], start
    line = detector.state.follower.usable("U1", detector.state.packed("U1")[0])
    assert line is not None and len(line.times) < 64, "the cut events were let go"


def test_the_state_gets_one_cache_and_another_follower_is_never_replaced() -> None:
    detector = Detector(_rules(False))
    batch_features(detector.state, _day(users=1)[:1])
    assert isinstance(detector.state.follower, TimelineCache)
    assert scoring._timelines(detector.state) is detector.state.follower

    class Other:
        def recorded(self, *args: object) -> None: ...

        def clear(self) -> None: ...

    detector.state.follower = Other()
    with pytest.raises(TypeError, match="followed by Other"):
        batch_features(detector.state, _day(users=1)[1:2])
