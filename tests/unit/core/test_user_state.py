"""The packed per-user history: what goes in comes out, in key order, at any size."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from txnmon.core.rules.state import Event, UserStateStore, pack_events, unpack_events

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

texts = st.text(max_size=40)
events = st.builds(
    Event,
    event_time=st.integers(min_value=-10**12, max_value=10**12).map(lambda us: T0 + dt.timedelta(microseconds=us)),
    transaction_id=texts, location=texts,
    amount=st.floats(allow_nan=False, allow_infinity=False), type=texts, status=texts, payment_method=texts,
)


@given(st.lists(events, max_size=30))
def test_packing_round_trips_every_field_to_the_microsecond(evs):
    assert unpack_events(pack_events(evs)) == evs


@given(st.lists(events, max_size=30, unique_by=lambda e: e.transaction_id))
def test_a_history_is_sorted_by_key_and_holds_each_transaction_once(evs):
    store = UserStateStore(max_users=10, max_events_per_user=1_000, horizon=dt.timedelta(days=1000))
    for e in evs:
        store.record("U", e)
        store.record("U", e)  # a redelivery adds nothing
    history = store.get("U")
    assert history.events == sorted(evs, key=lambda e: e.key)
    assert len(history) == len(evs)


def test_prior_events_exclude_the_judged_one_and_later_event_times():
    store = UserStateStore(max_users=10, max_events_per_user=100, horizon=dt.timedelta(hours=1))
    a = Event(T0, "a", "X", 1.0, "purchase", "success")
    b = Event(T0 + dt.timedelta(microseconds=1), "b", "X", 2.0, "purchase", "success")
    store.record("U", b)
    assert store.record("U", a) == []  # b's event time is after a's: not prior, though it arrived first
    assert store.prior("U", b) == [a]  # b itself is excluded by id


def test_raised_alerts_are_kept_only_for_users_who_have_one_and_go_with_the_user():
    store = UserStateStore(max_users=1, max_events_per_user=10, horizon=dt.timedelta(hours=1))
    store.get("U1").note_raised("velocity", T0, "t1:velocity")
    assert store.raised_of("U1") == {"velocity": (T0, "t1:velocity")}
    assert store.raised_of("U2") == {}
    store.get("U2")  # evicts U1 (max_users=1)
    assert "U1" not in store and store.raised_of("U1") == {}


raised_alerts = st.dictionaries(texts, st.tuples(events.map(lambda e: e.event_time), texts), max_size=4)


@given(st.lists(events, max_size=10), raised_alerts)
def test_the_changelog_value_round_trips_the_packed_events_and_raised_alerts(evs, raised):
    from txnmon.core.state_codec import decode_user_state, encode_user_state

    packed = pack_events(evs)
    assert decode_user_state(encode_user_state(packed, raised)) == (packed, raised)


def test_a_restored_user_is_judged_as_before_without_decoding_on_the_way():
    live = UserStateStore(max_users=10, max_events_per_user=100, horizon=dt.timedelta(hours=1))
    a = Event(T0, "a", "X", 1.0, "purchase", "success")
    live.record("U", a)
    live.get("U").note_raised("velocity", T0, "a:velocity")
    restored = UserStateStore(max_users=10, max_events_per_user=100, horizon=dt.timedelta(hours=1))
    restored.load_packed("U", *live.packed("U"))
    later = Event(T0 + dt.timedelta(minutes=1), "b", "X", 1.0, "purchase", "success")
    assert restored.prior("U", later) == live.prior("U", later) == [a]
    assert restored.raised_of("U") == {"velocity": (T0, "a:velocity")}


@given(st.lists(events, max_size=10), raised_alerts)
def test_a_format_2_changelog_value_is_migrated_with_payment_methods_unknown(evs, raised):
    """Format 2 (before payment methods were kept) is read, its events with an empty method."""
    import struct

    from txnmon.core.state_codec import decode_user_state, encode_user_state

    # format 2's packing: the same layout without the payment method's length and bytes
    fixed, texts_ = [], []
    for e in evs:
        parts = [x.encode("utf-8")[:0xFFFF].decode("utf-8", "ignore").encode("utf-8")
                 for x in (e.transaction_id, e.location, e.type, e.status)]
        fixed.append(struct.pack("<qdHHHH", (e.event_time - dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
                                 // dt.timedelta(microseconds=1), e.amount, *map(len, parts)))
        texts_.extend(parts)
    v2_events = b"".join((struct.pack("<I", len(evs)), *fixed, *texts_))
    v3 = encode_user_state(b"", raised)
    v2 = bytes([2]) + v3[1:] + v2_events
    events_out, raised_out = decode_user_state(v2)
    assert raised_out == raised
    assert unpack_events(events_out) == [e._replace(payment_method="") for e in evs]


def test_an_unknown_changelog_format_is_refused_with_what_to_do():
    import pytest

    from txnmon.core.state_codec import decode_user_state

    with pytest.raises(ValueError, match=r"unknown user state format 9.*newer txnmon"):
        decode_user_state(bytes([9, 0, 0, 0, 0]))


ascii_texts = st.text(alphabet=st.characters(max_codepoint=127), max_size=40)
ascii_events = st.builds(
    Event,
    event_time=st.integers(min_value=-10**12, max_value=10**12).map(lambda us: T0 + dt.timedelta(microseconds=us)),
    transaction_id=ascii_texts, location=ascii_texts,
    amount=st.floats(allow_nan=False, allow_infinity=False), type=ascii_texts, status=ascii_texts,
    payment_method=ascii_texts,
)


@given(st.lists(ascii_events, max_size=30))
def test_ascii_histories_take_the_one_decode_path_and_round_trip_too(evs):
    blob = pack_events(evs)
    assert blob[4 + len(evs) * 32:].isascii()  # 4-byte count, 32 fixed bytes per event: the fast path
    assert unpack_events(blob) == evs


def test_a_users_state_record_always_fits_a_kafka_message_keeping_the_newest_events():
    """Issue #27 item 5: a history over 1 MiB once became an empty changelog value, read back by the
    restore as "user deleted". The history is bounded by size, the oldest events dropped first."""
    from txnmon.core.rules.state import MAX_PACKED_BYTES
    from txnmon.core.state_codec import decode_user_state, encode_user_state, state_messages

    t0 = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    store = UserStateStore(10, 100_000, dt.timedelta(days=30))
    n = 1700
    for i in range(n):  # the longest texts the contract accepts: 128-char ids, 256-char places and methods
        store.record("u1", Event(t0 + dt.timedelta(seconds=i), f"{i:06d}" + "t" * 122, "L" * 256, 10.0, "purchase",
                                 "success", "P" * 256))
    blob, _ = store.packed("u1")
    assert 0 < len(blob) <= MAX_PACKED_BYTES
    kept = unpack_events(blob)
    assert kept[-1].transaction_id.startswith(f"{n - 1:06d}")  # the newest kept, the oldest dropped
    assert [e.transaction_id[:6] for e in kept] == [f"{i:06d}" for i in range(n - len(kept), n)]
    alert_raised = {"velocity": (t0, "x" * 128 + ":velocity")}
    (_, (key, value, _)), = state_messages({"u1": (blob, alert_raised)}, [], {"u1": 0})
    assert key == b"u1" and 0 < len(value) < 1_000_000  # under the producer's message.max.bytes
    assert decode_user_state(value) == (blob, alert_raised)
    # a history restored from an older txnmon, over the bound, is cut when it is written again
    big = pack_events([Event(t0 + dt.timedelta(seconds=i), f"{i:06d}" + "t" * 122, "L" * 256, 1.0, "purchase",
                             "success", "P" * 256) for i in range(n)])
    assert len(big) > 1_048_576 and len(encode_user_state(big, {})) <= MAX_PACKED_BYTES + 5
