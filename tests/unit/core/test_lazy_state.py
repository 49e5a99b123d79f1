"""User state decoded at most once per batch and appended to (issue 29), with the same bytes as before.

The packed bytes are the state changelog's values, so the new path is checked against the old one
(a full decode, insert and re-pack on every record, kept here as `old_record`) on random event
sequences: identical bytes after every step, identical prior events, identical verdicts."""

from __future__ import annotations

import bisect
import datetime as dt
import struct
import sys
from collections.abc import Callable
from types import FrameType
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from txnmon.core.rules import Detector, load_rules, parse_rules
from txnmon.core.rules import packed as packed_module
from txnmon.core.rules import state as state_module
from txnmon.core.rules.packed import as_stored, stored_and_packed
from txnmon.core.rules.state import Event, UserStateStore, pack_events, packed_within, unpack_events
from txnmon.settings import DEFAULT_RULES_FILE

T0 = dt.datetime(2025, 9, 30, 10, 0, tzinfo=dt.UTC)
AFTER = dt.timezone(dt.timedelta(hours=5, minutes=30))


class _AfterAnyId:
    """Sorts after every transaction id: (t, _AFTER_ANY_ID) bounds all keys at event time t."""

    def __lt__(self, other: object) -> bool:
        return False

    def __gt__(self, other: object) -> bool:
        return True


_AFTER_ANY_ID = _AfterAnyId()


def old_record(blob: bytes, event: Event, horizon: dt.timedelta, max_events: int) -> tuple[list[Event], bytes]:
    """`UserHistory.record` as it was before issue 29: decode all, insert, prune, re-pack all."""
    events = unpack_events(blob)
    keys = [e.key for e in events]
    i = bisect.bisect_right(keys, (event.event_time, _AFTER_ANY_ID))
    prior = [e for e in events[:i] if e.transaction_id != event.transaction_id]
    if all(e.transaction_id != event.transaction_id for e in events):
        at = bisect.bisect_right(keys, event.key)
        events.insert(at, event)
        keys.insert(at, event.key)
    cut = bisect.bisect_left(keys, (keys[-1][0] - horizon, ""))
    return prior, packed_within(events[max(cut, len(events) - max_events):])


class Tag(str):
    """A str subclass: it must read back as a plain str."""


class Amount(float):
    """A float subclass: it must read back as a plain float."""


texts = st.one_of(st.sampled_from(["Mumbai", "Delhi", "", "São Paulo", "東京"]), st.text(max_size=6))
events = st.builds(
    Event,
    event_time=st.builds(lambda m, tz: (T0 + dt.timedelta(minutes=m)).astimezone(tz),
                         st.integers(0, 300), st.sampled_from([dt.UTC, AFTER])),
    transaction_id=st.sampled_from([f"T{i}" for i in range(40)]) | st.text(min_size=1, max_size=4),
    location=texts, amount=st.floats(allow_nan=False) | st.sampled_from([100.0, -0.0]),
    type=st.sampled_from(["purchase", "refund"]), status=st.sampled_from(["success", "failed"]),
    payment_method=texts,
)
# a step: record an event for a user, forget a transaction, or end the batch
steps = st.lists(st.one_of(
    st.tuples(st.just("record"), st.sampled_from(["U1", "U2"]), events),
    st.tuples(st.just("forget"), st.sampled_from(["U1", "U2"]), st.sampled_from([f"T{i}" for i in range(40)])),
    st.tuples(st.just("end_batch"), st.just(""), st.none()),
    st.tuples(st.just("judge"), st.sampled_from(["U1", "U2"]), events),  # judged, then not recorded
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(steps=steps, horizon_minutes=st.sampled_from([30, 120, 100_000]), max_events=st.sampled_from([3, 10, 500]),
       limit=st.sampled_from([None, 200, 400]), in_order=st.booleans())
def test_recording_gives_the_bytes_and_prior_events_a_full_re_pack_gave(steps, horizon_minutes, max_events, limit,
                                                                        in_order):
    if in_order:  # mostly the newest event, the common case the append takes
        steps = sorted(steps, key=lambda s: s[2].event_time if s[0] == "record" else T0)
    horizon = dt.timedelta(minutes=horizon_minutes)
    store = UserStateStore(100, max_events, horizon)
    expected: dict[str, bytes] = {}
    with pytest.MonkeyPatch.context() as mp:
        if limit is not None:  # small enough for the size limit's cut to happen
            mp.setattr(packed_module, "MAX_PACKED_BYTES", limit)
            mp.setattr(state_module, "MAX_PACKED_BYTES", limit)
        for action, user, arg in steps:
            if action == "record":
                want_prior, expected[user] = old_record(expected.get(user, b""), arg, horizon, max_events)
                assert store.prior(user, arg) == want_prior
                assert store.record(user, arg) == want_prior
            elif action == "forget" and user in store:
                store.get(user).remove(arg)
                kept = [e for e in unpack_events(expected[user]) if e.transaction_id != arg]
                if len(kept) != len(unpack_events(expected[user])):
                    expected[user] = pack_events(kept)
            elif action == "end_batch":
                store.end_batch()
            elif action == "judge":  # the next record is of another event: it must not take this prior
                assert store.prior(user, arg) == (old_record(expected[user], arg, horizon, max_events)[0]
                                                  if user in expected else [])
            for u, blob in expected.items():
                assert store.packed(u)[0] == blob
                assert store.get(u).events == unpack_events(blob)


@settings(max_examples=100, deadline=None)
@given(events=st.lists(events, max_size=20), extra=st.binary(min_size=1, max_size=3))
def test_bytes_restored_with_trailing_bytes_are_re_packed_not_appended_to(events, extra):
    """A restored value is not trusted to be exactly what `pack_events` writes: the first record
    after it re-packs, as before."""
    store = UserStateStore(100, 500, dt.timedelta(days=365))
    blob = pack_events(sorted(events, key=lambda e: e.key)) + extra if events else b""
    store.load_packed("U1", blob, {})
    new = Event(T0 + dt.timedelta(days=1), "NEW", "Mumbai", 1.0, "purchase", "success", "UPI")
    store.record("U1", new)
    assert store.packed("U1")[0] == old_record(blob, new, store.horizon, 500)[1]


SHIPPED = load_rules(DEFAULT_RULES_FILE)
transactions = st.lists(st.fixed_dictionaries({
    "user_id": st.sampled_from(["U1", "U2"]),
    "minute": st.integers(0, 240),
    "amount": st.sampled_from([1.0, 100.0, 4_500.0, 60_000.0]),
    "location": st.sampled_from(["Mumbai", "Delhi", "London", "Perth"]),
    "status": st.sampled_from(["success", "success", "failed"]),
    "type": st.sampled_from(["purchase", "purchase", "refund"]),
    "payment_method": st.sampled_from(["UPI", "card", "wallet"]),
}), max_size=40)


class OldStore(UserStateStore):
    """The store with the record of before issue 29 (no cache, no append)."""

    def prior(self, user_id: str, event: Event) -> list[Event]:
        return old_record(self._users[user_id], event, self.horizon, self.max_events_per_user)[0] \
            if user_id in self._users else []

    def record(self, user_id: str, event: Event) -> list[Event]:
        self.get(user_id)
        prior, self._users[user_id] = old_record(self._users[user_id], event, self.horizon,
                                                 self.max_events_per_user)
        if self.watermark is None or event.event_time > self.watermark:
            self.watermark = event.event_time
        return prior


@pytest.mark.parametrize("ruleset", [SHIPPED, parse_rules("", "built-in defaults")], ids=["shipped", "built-in"])
@settings(max_examples=60, deadline=None)
@given(txs=transactions, batch=st.integers(1, 8), forget_every=st.sampled_from([0, 3, 5]))
def test_the_detector_s_verdicts_and_state_are_those_of_the_old_path(ruleset, txs, batch, forget_every):
    new, old = Detector(ruleset), Detector(ruleset)
    old.state = OldStore(old.state.max_users, old.state.max_events_per_user, old.state.horizon)
    for i, t in enumerate(txs):
        tx = {**t, "transaction_id": f"T{i % 30}", "_id": f"T{i % 30}",
              "event_time": T0 + dt.timedelta(minutes=t["minute"])}
        verdicts = []
        for detector in (new, old):
            judgement = detector.judge(tx)
            if forget_every and i % forget_every == 0:
                detector.forget(tx["user_id"], tx["transaction_id"], judgement)  # refused after judging
            else:
                detector.record(judgement)
            verdicts.append((judgement.hits, judgement.raised, judgement.completed))
            if i % batch == 0:
                detector.end_batch()
        assert verdicts[0] == verdicts[1]
        assert new.export_packed(["U1", "U2"]) == old.export_packed(["U1", "U2"])


def codings(fn: Callable[[], None]) -> tuple[int, int]:
    """(decodes, packs) of more than one event while `fn` runs, counted by function name so that
    the code before issue 29 (unpack_events, pack_events, packed_within) is counted too."""
    counts = [0, 0]
    decoders, packers = {"unpack_events", "_unpack"}, {"pack_events", "packed_within"}

    def size(data: object) -> int:
        if isinstance(data, bytes):
            return struct.unpack_from("<I", data)[0] if data else 0
        return len(data) if isinstance(data, list) else 0

    def profile(frame: FrameType, event: str, _arg: object) -> None:
        name, caller = frame.f_code.co_name, frame.f_back.f_code.co_name if frame.f_back else ""
        if event != "call" or caller in decoders | packers:
            return
        if name in decoders and size(frame.f_locals.get("blob")) > 1:
            counts[0] += 1
        elif name in packers and size(frame.f_locals.get("events")) > 1:
            counts[1] += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return counts[0], counts[1]


def test_a_batch_never_decodes_a_user_s_whole_history_and_appends_without_re_packing():
    detector = Detector(SHIPPED)
    history = [Event(T0 + dt.timedelta(minutes=i), f"H{i}", "Mumbai", 100.0, "purchase", "success", "UPI")
               for i in range(30)]
    detector.import_packed("U1", pack_events(history), {})

    def batch() -> None:
        for i in range(20):
            tx = {"transaction_id": f"N{i}", "_id": f"N{i}", "user_id": "U1", "amount": 100.0,
                  "location": "Mumbai", "payment_method": "UPI", "event_time": T0 + dt.timedelta(hours=1, minutes=i)}
            detector.record(detector.judge(tx))
        detector.end_batch()

    # before: 40 decodes (judge and record each decoded the whole history) and 20 whole re-packs; then
    # one per batch; now none: only the events within the rules' windows are read
    # (src/txnmon/core/rules/history.py, tests/unit/core/test_history.py counts them)
    assert codings(batch) == (0, 0)
    assert unpack_events(detector.export_packed(["U1"])["U1"][0])[-1].transaction_id == "N19"
    assert codings(batch) == (0, 0)


def test_judging_changes_nothing_and_a_failure_in_record_leaves_the_state_as_it_was():
    store = UserStateStore(100, 500, dt.timedelta(days=1))
    first = Event(T0, "A", "Mumbai", 1.0, "purchase", "success", "UPI")
    store.record("U1", first)
    before = store.packed("U1")[0]
    later = Event(T0 + dt.timedelta(minutes=1), "B", "Mumbai", 1.0, "purchase", "success", "UPI")
    assert store.prior("U1", later) == [first] and store.packed("U1")[0] is before
    naive = later._replace(event_time=dt.datetime(2025, 9, 30, 10, 1))  # cannot be packed
    with pytest.raises(TypeError):
        store.record("U1", naive)
    assert store.packed("U1")[0] == before and store.get("U1").events == [first]
    assert store.record("U1", later) == [first]
    assert unpack_events(store.packed("U1")[0]) == [first, later]


def calls(fn: Callable[[], object], names: set[str]) -> dict[str, int]:
    """How many times each function of these names is called while `fn` runs."""
    counts = dict.fromkeys(names, 0)

    def profile(frame: FrameType, event: str, _arg: object) -> None:
        if event == "call" and frame.f_code.co_name in counts:
            counts[frame.f_code.co_name] += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return counts


def test_a_record_after_its_judge_packs_the_event_once_and_neither_decodes_nor_searches_again():
    """The judge's `prior` is the record's (the same event on the same bytes): no second bisection or
    byte search, and the new event is packed once, not packed, unpacked and packed again."""
    store = UserStateStore(100, 500, dt.timedelta(days=30))
    for i in range(30):
        store.record("U1", Event(T0 + dt.timedelta(minutes=i), f"H{i}", "Mumbai", 1.0, "purchase", "success", "UPI"))
    store.end_batch()
    new = Event(T0 + dt.timedelta(hours=1), "NEW", "Mumbai", 5.0, "purchase", "success", "UPI")
    prior = store.prior("U1", new)
    assert list(reversed(prior))[-1].transaction_id == "H0"  # the rules read all of it
    # before: _before 1, pack_events 2 (as_stored, append_event), _unpack 1 (as_stored)
    counted = calls(lambda: store.record("U1", new), {"_before", "pack_events", "_unpack", "events_of"})
    assert counted == {"_before": 0, "pack_events": 0, "_unpack": 0, "events_of": 0}
    assert store.packed("U1")[0] == pack_events([*prior, new])
    assert store.get("U1").events[-1] is new  # it reads back as it is: the same object is kept


def test_an_in_order_event_is_not_late_without_a_history_view_or_a_datetime_made():
    store = UserStateStore(100, 500, dt.timedelta(days=30))
    store.record("U1", Event(T0, "A", "Mumbai", 1.0, "purchase", "success", "UPI"))
    later = Event(T0 + dt.timedelta(minutes=1), "B", "Mumbai", 1.0, "purchase", "success", "UPI")
    # before: a `UserHistory` made and the newest time decoded to a datetime (`latest_of`)
    counted = calls(lambda: store.later_than("U1", later), {"__init__", "latest_of"})
    assert counted == {"__init__": 0, "latest_of": 0}
    assert store.later_than("U1", later) == [] and store.later_than("U2", later) == []
    assert store.later_than("U1", later._replace(event_time=T0)) == store.get("U1").events


@settings(max_examples=100, deadline=None)
@given(history=st.lists(events, max_size=12), probe=events)
def test_late_arrivals_are_found_as_by_the_newest_datetime(history, probe):
    store = UserStateStore(100, 500, dt.timedelta(days=365))
    for e in history:
        store.record("U1", e)
    events_now = store.get("U1").events if "U1" in store else []
    late = bool(events_now) and max(e.event_time for e in events_now) >= probe.event_time
    assert store.later_than("U1", probe) == (events_now if late else [])


def old_as_stored(event: Event) -> Event:
    """`as_stored` as it was: pack the event alone, read it back."""
    return unpack_events(pack_events([event]))[0]


odd_times = st.builds(lambda m, us, tz, fold: (T0 + dt.timedelta(minutes=m, microseconds=us)).astimezone(tz)
                      .replace(fold=fold),
                      st.integers(-10**6, 10**6), st.integers(0, 999_999),
                      st.sampled_from([dt.UTC, AFTER, ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata")]),
                      st.sampled_from([0, 0, 1]))
odd_texts = texts | st.sampled_from(["a" * 0x10000, "é" + "a" * 0xFFFE, "x" * 0xFFFF]) \
    | st.builds(Tag, st.text(max_size=3))
odd_events = st.builds(
    Event, event_time=odd_times, transaction_id=odd_texts, location=odd_texts,
    amount=st.floats() | st.sampled_from([-0.0, float("nan"), float("inf")]) | st.builds(Amount, st.floats(-9, 9)),
    type=odd_texts, status=odd_texts, payment_method=odd_texts)


@settings(max_examples=300, deadline=None)
@given(event=odd_events)
def test_the_stored_event_and_its_bytes_are_those_of_a_pack_and_an_unpack(event):
    """The record's one pack: the same bytes as `pack_events([event])`, and an event that reads, in
    every way the rules and the documents can tell, as the one a pack and unpack gave (the event itself
    only when it is that: UTC by `dt.UTC`, plain str and float, no NaN, texts uncut)."""
    stored, one = stored_and_packed(event)
    old = old_as_stored(event)
    assert one == pack_events([event])
    assert repr(stored) == repr(old) and type(stored) is type(old) is Event
    assert [type(v) for v in stored] == [type(v) for v in old]
    assert stored.event_time.tzinfo is old.event_time.tzinfo and stored.event_time.fold == old.event_time.fold
    assert (stored == event) == (old == event)  # a NaN read back is another object: unequal in a tuple
    assert as_stored(event) == stored or stored.amount != stored.amount


def test_a_user_whose_only_transaction_was_withdrawn_is_judged_again():
    """Withdrawing a user's only event leaves an empty packed history (a 4-byte count of 0), not no
    history: the late-arrival check must read it as empty, not look for a last event before byte 0
    (it raised struct.error, and every later transaction of the user went to the DLQ)."""
    detector = Detector(SHIPPED)
    first = {"transaction_id": "A", "_id": "A", "user_id": "U1", "amount": 10.0, "location": "Mumbai",
             "status": "success", "type": "purchase", "payment_method": "UPI", "event_time": T0}
    detector.record(detector.judge(first))
    detector.forget("U1", "A")  # the store refused it after it was recorded
    assert detector.export_packed(["U1"])["U1"][0] == pack_events([])
    later = {**first, "transaction_id": "B", "_id": "B", "event_time": T0 + dt.timedelta(minutes=5)}
    judgement = detector.judge(later)
    detector.record(judgement)
    assert [e.transaction_id for e in detector.state.get("U1").events] == ["B"]
