"""Judging cost that does not grow with history (issue 29): a history is read from its newest event
back only as far as a rule looks, and the median's amounts are kept as the window slides.

Each lazy answer is checked against the from-scratch one it replaces (a full decode, a scan, a sort)
on random histories, in and out of order, with expiry, forgetting and damaged bytes."""

from __future__ import annotations

import datetime as dt
import struct
import sys
from collections.abc import Callable
from types import FrameType

from hypothesis import given, settings
from hypothesis import strategies as st

from txnmon.core.rules import Detector, load_rules, parse_rules
from txnmon.core.rules.history import Decoded, Prior, micros
from txnmon.core.rules.packed import as_stored, event_from, events_of
from txnmon.core.rules.state import Event, pack_events, unpack_events
from txnmon.core.rules.windows import within
from txnmon.settings import DEFAULT_RULES_FILE

T0 = dt.datetime(2025, 9, 30, 10, 0, tzinfo=dt.UTC)
SHIPPED = load_rules(DEFAULT_RULES_FILE)

texts = st.one_of(st.sampled_from(["Mumbai", "Delhi", "", "São Paulo", "東京", "refund"]), st.text(max_size=5))
events = st.builds(
    Event,
    event_time=st.integers(0, 600).map(lambda m: T0 + dt.timedelta(minutes=m)),
    transaction_id=st.text(min_size=1, max_size=4), location=texts,
    amount=st.floats(allow_nan=True) | st.sampled_from([100.0, 0.0, -0.0, 5.0]),
    type=st.sampled_from(["purchase", "refund", "refund", "x"]), status=st.sampled_from(["success", "failed"]),
    payment_method=texts,
)


def old_before(blob: bytes, t: dt.datetime) -> list[Event]:
    return [e for e in unpack_events(blob) if e.event_time <= t]


@settings(max_examples=150, deadline=None)
@given(evs=st.lists(events.filter(lambda e: e.amount == e.amount), max_size=30),
       queries=st.lists(st.integers(-10, 610), min_size=1, max_size=6),
       extra=st.sampled_from([b"", b"", b"\x00", b"xy"]))
def test_a_prior_view_reads_as_the_decoded_list_it_replaces(evs, queries, extra):
    blob = pack_events(sorted(evs, key=lambda e: e.key)) + extra
    decoded = Decoded(blob)
    for minute in queries:
        t = T0 + dt.timedelta(minutes=minute)
        want = old_before(blob, t)
        view = Prior(decoded, decoded.upto(t))
        assert len(view) == len(want)
        assert list(reversed(view)) == want[::-1]  # the walk back first: it decodes from the newest
        assert view == want and view[-2:] == want[-2:] and view[::3] == want[::3]
        for since in (t - dt.timedelta(minutes=30), t - dt.timedelta(hours=5), t + dt.timedelta(minutes=1), T0):
            assert within(view, since) == within(want, since)
            assert view.newest_since(since) == within(want, since)
        if want:
            assert view[-1] == want[-1] and view[0] == want[0]
    assert decoded.all() == unpack_events(blob)


def scan_amounts(prior: list[Event], since: dt.datetime) -> list[float]:
    return sorted(e.amount for e in within(prior, since) if e.type != "refund")


@settings(max_examples=150, deadline=None)
@given(first=st.lists(events, max_size=15), later=st.lists(events, max_size=15),
       lookback=st.sampled_from([20, 90, 10_000]))
def test_the_kept_amounts_are_the_sorted_scan_as_events_are_appended_and_expire(first, later, lookback):
    """Appends of newest events (the usual case) slide the window and cut the oldest from the bytes:
    the amounts it keeps are always the sorted non-refund amounts a scan of the history finds, and
    the bytes those a full pack would give."""
    window = dt.timedelta(minutes=lookback)
    history = sorted(first, key=lambda e: e.key)
    decoded = Decoded(pack_events(history))
    for e in sorted(later, key=lambda e: e.key):
        if history and e.key <= history[-1].key:
            continue
        since = e.event_time - window
        got = Prior(decoded, decoded.upto(e.event_time)).usual_amounts(since, window)
        want = scan_amounts(history, since)
        if got is None:  # only a NaN makes the kept list give up
            assert any(a != a for a in want)
        else:
            assert got == want
        stored = as_stored(e)
        # the oldest cut as the horizon would (here: twice the lookback), the new one appended
        cut = sum(1 for h in history if h.event_time < e.event_time - 2 * window)
        decoded = decoded.rewritten(cut, stored)
        history = [*history[cut:], stored]
        assert decoded.blob == pack_events(history)


SHORT = parse_rules("""
version: short
signals:
  amount_vs_usual: {factor: 2, min_amount: 50, lookback: 40m, min_history: 1}
  new_location: {lookback: 40m, min_history: 1}
  new_payment_method: {lookback: 40m, min_history: 1}
  fast_travel: {window: 1h, usual_lookback: 2h, lateness: 10m}
typologies:
  takeover:
    signals: {amount_vs_usual: 50, new_location: 30, new_payment_method: 30}
    thresholds: {low: 50, high: 100}
  travel:
    signals: {fast_travel: 100}
    thresholds: {high: 100}
""", "short windows")

transactions = st.lists(st.fixed_dictionaries({
    "user_id": st.sampled_from(["U1", "U2"]),
    "minute": st.integers(0, 300),
    "amount": st.sampled_from([0.0, 1.0, 20.0, 60.0, 100.0, 4_500.0, 60_000.0]),
    "location": st.sampled_from(["Mumbai", "Delhi", "London", "Perth"]),
    "status": st.sampled_from(["success", "success", "failed"]),
    "type": st.sampled_from(["purchase", "purchase", "refund"]),
    "payment_method": st.sampled_from(["UPI", "card", "wallet"]),
}), max_size=50)


class ListDetector(Detector):
    """The detector judging from a plain list of prior events (the from-scratch path: scans and sorts)."""

    def judge(self, tx):  # type: ignore[no-untyped-def]
        real = self.state.prior
        self.state.prior = lambda user, event: list(real(user, event))  # type: ignore[method-assign]
        try:
            return super().judge(tx)
        finally:
            del self.state.prior


@given(txs=transactions, batch=st.integers(1, 8), forget_every=st.sampled_from([0, 4]),
       ruleset=st.sampled_from([SHIPPED, SHORT]), in_order=st.booleans())
@settings(max_examples=60, deadline=None)
def test_verdicts_from_the_lazy_history_are_those_from_the_whole_list(txs, batch, forget_every, ruleset, in_order):
    if in_order:
        txs = sorted(txs, key=lambda t: t["minute"])
    lazy, scan = Detector(ruleset), ListDetector(ruleset)
    for i, t in enumerate(txs):
        tx = {**t, "transaction_id": f"T{i % 40}", "_id": f"T{i % 40}",
              "event_time": T0 + dt.timedelta(minutes=t["minute"])}
        verdicts = []
        for detector in (lazy, scan):
            judgement = detector.judge(tx)
            if forget_every and i % forget_every == 0:
                detector.forget(tx["user_id"], tx["transaction_id"], judgement)
            else:
                detector.record(judgement)
            verdicts.append((judgement.hits, [h.explanation for h in judgement.hits], judgement.completed))
            if i % batch == 0:
                detector.end_batch()
        assert verdicts[0] == verdicts[1]
        assert lazy.export_packed(["U1", "U2"]) == scan.export_packed(["U1", "U2"])


def decoded_events(fn: Callable[[], None]) -> int:
    """How many `Event`s are made while `fn` runs: those `events_of` decodes and `event_from` makes (both
    without calling `Event.__new__`) and those made by calling it."""
    count = 0
    code, decoder, maker = Event.__new__.__code__, events_of.__code__, event_from.__code__

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal count
        if event == "call" and frame.f_code is code:
            count += 1
        elif event == "return" and frame.f_code is decoder and isinstance(arg, tuple):
            count += len(arg[0])
        elif event == "return" and frame.f_code is maker and isinstance(arg, Event):
            count += 1

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return count


def test_judging_reads_only_the_windows_the_rules_look_at_not_the_whole_history():
    """A user with 30 days of history (200 events): a transaction under the median's minimum amount
    is judged from the last day of it (the longest short window, refunds' 24 h), and the median's 30
    days are read once per batch, then slid, whatever the history's length."""
    detector = Detector(SHIPPED)
    start = T0 - dt.timedelta(days=30)
    history = [Event(start + dt.timedelta(hours=3.6 * i), f"H{i}", "Mumbai", 100.0 + i, "purchase", "success", "UPI")
               for i in range(200)]
    detector.import_packed("U1", pack_events(history), {})

    def batch(amount: float, day: int) -> Callable[[], None]:
        def run() -> None:
            for i in range(20):
                tx = {"transaction_id": f"N{day}-{i}", "_id": f"N{day}-{i}", "user_id": "U1", "amount": amount,
                      "location": "Mumbai", "payment_method": "UPI", "event_time": T0 + dt.timedelta(days=day, hours=i)}
                detector.record(detector.judge(tx))
            detector.end_batch()
        return run

    # before: every judge and every record decoded all 200 (and more): 8,000 and up
    assert decoded_events(batch(100.0, 0)) < 20 * 3 + 40
    assert decoded_events(batch(12_000.0, 1)) < 200 + 20 * 3 + 40  # the 30-day median: read once, then kept


def test_walking_back_decodes_a_chunk_at_a_time_and_a_window_only_its_events():
    history = [Event(T0 + dt.timedelta(minutes=i), f"H{i}", "Mumbai", 1.0, "purchase", "success", "UPI")
               for i in range(200)]
    blob = pack_events(history)
    view = Prior(Decoded(blob), 200)
    assert decoded_events(lambda: next(reversed(view))) <= 16  # the newest chunk only
    assert decoded_events(lambda: view.newest_since(T0 + dt.timedelta(minutes=150))) <= 50
    fresh = Prior(Decoded(blob), 200)
    assert fresh.newest_since(T0 + dt.timedelta(minutes=150)) == history[:149:-1]
    assert list(fresh) == history and list(reversed(fresh)) == history[::-1]


def test_a_usual_basket_of_zero_gives_no_signal_instead_of_dividing_by_zero() -> None:
    # zero-value card checks and free orders are accepted amounts (>= 0); before, the median of 0 raised
    # ZeroDivisionError and the user's next real purchase went to the DLQ as a processing error
    from txnmon.core.rules.evidence import amount_vs_usual_signal
    from txnmon.core.rules.rulebook import AmountVsUsualSignal
    from txnmon.core.rules.state import Event

    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    prior = [Event(start + dt.timedelta(hours=i), f"Z{i}", "Mumbai", 0.0, "purchase", "success", "UPI")
             for i in range(3)]
    buy = Event(start + dt.timedelta(hours=5), "B1", "Mumbai", 50_000.0, "purchase", "success", "UPI")
    assert amount_vs_usual_signal(buy, prior, AmountVsUsualSignal()) is None
    prior[1] = Event(prior[1].event_time, "Z1", "Mumbai", 10_000.0, "purchase", "success", "UPI")
    prior[2] = Event(prior[2].event_time, "Z2", "Mumbai", 10_000.0, "purchase", "success", "UPI")
    assert amount_vs_usual_signal(buy, prior, AmountVsUsualSignal()) is not None  # 5x a usual 10,000


# the time reads as they were before the times were read in one go (issue 29): one struct read per look
def _old_time_us(blob: bytes, i: int) -> int:
    return int(struct.unpack_from("<q", blob, 4 + i * 26)[0])


def _old_upto(blob: bytes, count: int, at: int) -> int:
    if not count:
        return 0
    if _old_time_us(blob, count - 1) <= at:
        return count
    lo, hi = 0, count - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _old_time_us(blob, mid) <= at:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _old_first_at_or_after(blob: bytes, at: int, end: int) -> int:
    lo, hi = 0, end
    while lo < hi:
        mid = (lo + hi) // 2
        if _old_time_us(blob, mid) < at:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _old_appendable(blob: bytes, count: int) -> bool:
    try:
        at = 4 + count * 26
        return at + sum(sum(row[2:]) for row in struct.iter_unpack("<qdHHHHH", blob[4:at])) == len(blob)
    except (struct.error, TypeError, ValueError):
        return False


def _outcome(fn: Callable[..., object], *args: object) -> object:
    try:
        return fn(*args)
    except Exception as exc:
        return type(exc)


@settings(max_examples=200, deadline=None)
@given(evs=st.lists(events, max_size=20), in_order=st.booleans(),
       damage=st.sampled_from([None, b"", b"\x00", b"xy", -1, -3, -30]),
       queries=st.lists(st.integers(-10, 610), min_size=1, max_size=6), k=st.integers(0, 3), new=events)
def test_times_read_in_one_go_answer_each_bisection_as_the_reads_one_at_a_time(evs, in_order, damage, queries, k, new):
    """Sorted or not, with bytes after the texts or cut short: every position, window start and the
    appendable verdict are those of the one-time-at-a-time reads, and a rewritten history hands over
    the times of its bytes."""
    blob = pack_events(sorted(evs, key=lambda e: e.key) if in_order else evs)
    blob = blob + damage if isinstance(damage, bytes) else blob[:damage] if damage is not None else blob
    if 0 < len(blob) < 4:
        return  # no count to read: `Decoded` fails as it did
    decoded, count = Decoded(blob), len(evs) if blob else 0
    for minute in queries:
        t = T0 + dt.timedelta(minutes=minute)
        at = micros(t)
        assert _outcome(decoded.upto, t) == _outcome(_old_upto, blob, count, at)
        for end in {0, count // 2, count}:
            assert _outcome(decoded.first_at_or_after_us, at, end) == _outcome(_old_first_at_or_after, blob, at, end)
    for i in range(count):
        assert _outcome(decoded.time_us, i) == _outcome(_old_time_us, blob, i)
    assert decoded.appendable == _old_appendable(blob, count)
    if decoded.appendable and in_order and k <= count:
        stored = as_stored(new._replace(event_time=T0 + dt.timedelta(minutes=700), transaction_id="new"))
        rewritten = decoded.rewritten(k, stored)
        handed = rewritten._times  # handed over when this history's times were read (an empty one has none)
        assert handed is None if not count else handed == [_old_time_us(rewritten.blob, i) for i in range(len(handed))]
        assert [rewritten.time_us(i) for i in range(rewritten.count)] == \
            [_old_time_us(rewritten.blob, i) for i in range(rewritten.count)]


@given(evs=st.lists(events, max_size=20), damage=st.sampled_from([None, b"xy", -1, -30]))
def test_a_long_history_read_event_by_event_gives_the_times_of_the_one_struct_read(evs, damage):
    """Histories longer than _ONE_STRUCT_UP_TO are read one fixed part at a time (a struct per count
    cost time and memory in proportion to it): the same times and appendable verdict."""
    from txnmon.core.rules import history

    blob = pack_events(evs)
    blob = blob + damage if isinstance(damage, bytes) else blob[:damage] if damage is not None else blob
    if len(blob) < 4:
        return
    one = Decoded(blob)
    expected = (one._read_times(), one.appendable)
    saved, history._ONE_STRUCT_UP_TO = history._ONE_STRUCT_UP_TO, 0
    try:
        each = Decoded(blob)
        assert (each._read_times(), each.appendable) == expected
    finally:
        history._ONE_STRUCT_UP_TO = saved


def test_a_damaged_count_sizes_no_struct():
    """A changelog value claiming 4 billion events in 104 bytes: read as damaged at once, as before,
    without building (and caching) a struct for that count."""
    from txnmon.core.rules import history

    blob = b"\xff\xff\xff\xff" + bytes(100)
    before = history._fixed_parts.cache_info().currsize
    assert Decoded(blob)._read_times() is None
    assert history._fixed_parts.cache_info().currsize == before


places = st.sampled_from(["Mumbai", "mumbai", "MUMBAI", "Delhi", "", "São Paulo", "東京", "\ud800"])


@settings(max_examples=200, deadline=None)
@given(evs=st.lists(st.builds(Event, event_time=st.integers(0, 600).map(lambda m: T0 + dt.timedelta(minutes=m)),
                               transaction_id=st.text(min_size=1, max_size=4),
                               location=places.filter(lambda p: p != "\ud800") | texts, amount=st.just(1.0),
                               type=st.just("purchase"), status=st.just("success"), payment_method=texts),
                     max_size=20),
       place=places, minute=st.integers(-10, 610), back=st.sampled_from([0, 30, 360, 700]),
       extra=st.sampled_from([b"", b"", b"\x00"]), pick=st.integers(0, 30))
def test_only_one_place_in_a_window_is_read_in_the_bytes_as_the_scan_reads_it(evs, place, minute, back, extra,
                                                                               pick):
    """The fast-travel signal's shortcut: "every event in the window is at exactly this place", read in
    the packed bytes. Where it says yes the scan agrees; on bytes as packed here it always answers as the
    scan (case, accents and other scripts included); a place not encodable as UTF-8 is never a yes."""
    from txnmon.core.rules.history import located_only_at

    evs = sorted(evs, key=lambda e: e.key)
    if evs and pick < 20:  # mostly a place the history has (a window all at it is then likelier)
        place = evs[pick % len(evs)].location
    blob = pack_events(evs) + extra
    decoded = Decoded(blob)
    t = T0 + dt.timedelta(minutes=minute)
    since = t - dt.timedelta(minutes=back)
    view = Prior(decoded, decoded.upto(t))
    scan = all(e.location == place for e in within(old_before(blob, t), since))
    found = located_only_at(view, since, place)
    assert not found or scan
    if not extra and place != "\ud800":
        assert found == scan
    assert not located_only_at(list(view), since, place)  # any other sequence: the caller scans it


def test_events_after_the_transaction_s_time_are_walked_over_not_asked():
    """A late transaction's prior ends before the history does: the later events' texts come after its
    window's in the bytes, and are stepped over to find them."""
    from txnmon.core.rules.history import located_only_at

    evs = [Event(T0 + dt.timedelta(minutes=m), f"T{m}", place, 1.0, "purchase", "success", "UPI")
           for m, place in ((0, "Mumbai"), (10, "Mumbai"), (20, "São Paulo"), (30, "Delhi"))]
    decoded = Decoded(pack_events(evs))
    view = Prior(decoded, decoded.upto(T0 + dt.timedelta(minutes=15)))
    assert located_only_at(view, T0, "Mumbai")
    assert not located_only_at(view, T0, "Delhi")
    assert located_only_at(Prior(decoded, 4), T0 + dt.timedelta(minutes=25), "Delhi")


def test_a_user_who_stays_in_one_place_is_judged_without_decoding_an_event():
    """Most transactions have no other place within fast travel's 6 hours: that is read in the bytes,
    and a purchase under the median's minimum decodes nothing (one `Event` each, for the transaction)."""
    detector = Detector(SHIPPED)
    history = [Event(T0 - dt.timedelta(hours=i), f"H{i}", "Mumbai", 100.0, "purchase", "success", "UPI")
               for i in range(24, 0, -1)]
    detector.import_packed("U1", pack_events(history), {})

    def batch(place: str) -> Callable[[], None]:
        def run() -> None:
            for i in range(10):
                tx = {"transaction_id": f"{place}-{i}", "_id": f"{place}-{i}", "user_id": "U1", "amount": 100.0,
                      "location": place, "payment_method": "UPI", "event_time": T0 + dt.timedelta(hours=i)}
                detector.record(detector.judge(tx))
            detector.end_batch()
        return run

    assert decoded_events(batch("Mumbai")) == 10
    assert decoded_events(batch("Delhi")) > 10  # a place of its own: the window is decoded and measured


def test_a_long_history_and_one_handed_over_by_a_record_answer_as_the_scan():
    """Over 256 events (read one fixed part at a time) and after `rewritten` (which hands its times over):
    the window's places and its count as a scan of the events finds them."""
    from txnmon.core.rules.history import count_since, located_only_at

    evs = [Event(T0 + dt.timedelta(minutes=m), f"T{m}", "Delhi" if m % 97 == 0 else "Mumbai", 1.0, "purchase",
                 "success", "UPI") for m in range(300)]
    decoded = Decoded(pack_events(evs))
    newer = Event(T0 + dt.timedelta(minutes=300), "N", "Mumbai", 1.0, "purchase", "success", "UPI")
    handed = decoded.rewritten(10, newer)
    for d, held in ((decoded, evs), (Decoded(pack_events(evs)), evs), (handed, [*evs[10:], newer])):
        for back in (0, 5, 90, 120, 400):
            since = held[-1].event_time - dt.timedelta(minutes=back)
            window = within(held, since)
            view = Prior(d, d.count)
            assert located_only_at(view, since, "Mumbai") == all(e.location == "Mumbai" for e in window)
            assert count_since(view, since) == len(window)
    assert count_since(list(evs), T0) is None  # any other sequence: the caller scans it
