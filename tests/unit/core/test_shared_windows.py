"""Typologies that read each window of a user's history once per transaction (issue 29): the
signals share the scans and what is worked out from them (places, countries, payment methods).

Each answer is checked against the signals as they were (tests/unit/core/old_signals.py: every
signal scanning for itself, every typology weighing all its signals) on random histories, lazy and
plain, in and out of order, with forgets and batches; and what a transaction reads is counted."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.core.old_signals import old_weigh
from txnmon.core.rules import Detector, engine, load_rules, parse_rules
from txnmon.core.rules.evidence import plan, weigh
from txnmon.core.rules.history import Decoded, Prior, newest_since
from txnmon.core.rules.state import Event, pack_events
from txnmon.core.rules.windows import Shared, within
from txnmon.settings import DEFAULT_RULES_FILE

T0 = dt.datetime(2025, 9, 30, 10, 0, tzinfo=dt.UTC)
SHIPPED = load_rules(DEFAULT_RULES_FILE)
# every signal, short windows, small histories, a counter-signal and a typology reached by one signal
WIDE = parse_rules("""
version: wide
signals:
  high_amount: {threshold: 5000}
  amount_vs_usual: {factor: 2, min_amount: 50, lookback: 40m, min_history: 1}
  new_location: {lookback: 40m, min_history: 1}
  new_country: {lookback: 90m, min_history: 1}
  new_payment_method: {lookback: 40m, min_history: 1}
  far_from_usual: {lookback: 2h, min_history: 1, min_km: 500}
  fast_travel: {window: 1h, usual_lookback: 2h, lateness: 10m, unknown_city_window: 20m}
  tiny_amounts: {max_amount: 20, min_count: 2, window: 30m}
  declines: {min_count: 2, window: 30m}
  refunds: {min_count: 2, window: 1h}
  velocity: {min_count: 2, window: 20m, checkout_gap: 60s}
typologies:
  takeover:
    signals: {amount_vs_usual: 50, new_location: 30, new_payment_method: 30, far_from_usual: 20}
    thresholds: {low: 50, high: 100}
  abroad:
    signals: {new_country: 40, high_amount: 35, fast_travel: 60, velocity: -20}
    thresholds: {medium: 40, high: 90}
  testing:
    signals: {tiny_amounts: 30, declines: 30, refunds: 40}
    thresholds: {low: 30, medium: 60}
""")
# the single-condition rules on (all by default), sharing windows with typologies of the same lookbacks
RULES = parse_rules("""
version: rules
rules:
  velocity: {max_transactions: 2, window: 20m}
  unusual_location: {lookback: 40m, min_history: 1, max_known_locations: 2}
  impossible_travel: {window: 1h}
  high_value_unusual_location: {min_amount: 50}
  excessive_refunds: {max_refunds: 1, window: 1h}
  repeated_failed_payments: {max_failures: 1, window: 30m}
signals:
  new_location: {lookback: 40m, min_history: 1}
  amount_vs_usual: {factor: 2, min_amount: 50, lookback: 40m, min_history: 1}
  new_payment_method: {lookback: 40m, min_history: 1}
typologies:
  takeover:
    signals: {amount_vs_usual: 50, new_location: 30, new_payment_method: 30}
    thresholds: {low: 50, high: 100}
""")
PLACES = ["Mumbai", "mumbai", "Delhi", "London", "Perth", "Paris", "Atlantis", "", "Mumbai, IN"]

events = st.builds(
    Event,
    event_time=st.integers(0, 300).map(lambda m: T0 + dt.timedelta(minutes=m)),
    transaction_id=st.text(alphabet="abcdef", min_size=1, max_size=3),
    location=st.sampled_from(PLACES),
    amount=st.sampled_from([0.0, 1.0, 15.0, 100.0, 4_500.0, 60_000.0]),
    type=st.sampled_from(["purchase", "purchase", "refund"]), status=st.sampled_from(["success", "failed"]),
    payment_method=st.sampled_from(["UPI", "upi", "card", ""]),
)


def hits_of(found: Sequence[Any]) -> list[Any]:
    """Hits as comparable data, the order of the signals present included (it orders the reasons)."""
    return [(h.name, h.severity, h.total, list(h.present.items())) for h in found]


@settings(max_examples=200, deadline=None)
@given(history=st.lists(events, max_size=25), event=events, ruleset=st.sampled_from([SHIPPED, WIDE, RULES]))
def test_typologies_weigh_as_each_signal_scanning_for_itself_did(history, event, ruleset):
    history = sorted({e.transaction_id: e for e in history}.values(), key=lambda e: e.key)
    prior = [e for e in history if e.event_time <= event.event_time and e.transaction_id != event.transaction_id]
    want = hits_of(old_weigh(ruleset, event, prior))
    plans = plan(ruleset)
    decoded = Decoded(pack_events(prior))
    for seen_as in (prior, Prior(decoded, decoded.count), Shared(prior)):
        assert hits_of(weigh(plans, event, seen_as, ruleset)) == want


@contextlib.contextmanager
def old_typologies() -> Iterator[None]:
    """The detector weighing typologies as before (its rules and everything else as they are)."""
    real, real_shared = engine._typology_hits, engine.shared
    engine.shared = lambda prior: prior  # type: ignore[assignment]  # the rules scan for themselves too
    engine._typology_hits = lambda plans, event, prior, ruleset, model=None, modelled=None: [  # type: ignore[assignment]
        engine._typology_hit(found, ruleset) for found in old_weigh(ruleset, event, prior)]
    try:
        yield
    finally:
        engine._typology_hits, engine.shared = real, real_shared


def run(ruleset: Any, txs: list[dict[str, Any]], batch: int, forget_every: int) -> list[Any]:
    detector, out = Detector(ruleset), []
    for i, tx in enumerate(txs):
        judgement = detector.judge(tx)
        if forget_every and i % forget_every == 0:
            detector.forget(tx["user_id"], tx["transaction_id"], judgement)
        else:
            detector.record(judgement)
        out.append((judgement.hits, [h.explanation for h in judgement.hits]))
        if i % batch == 0:
            detector.end_batch()
    return out


transactions = st.lists(st.fixed_dictionaries({
    "user_id": st.sampled_from(["U1", "U2"]), "minute": st.integers(0, 300),
    "amount": st.sampled_from([0.0, 10.0, 100.0, 4_500.0, 60_000.0]), "location": st.sampled_from(PLACES),
    "status": st.sampled_from(["success", "success", "failed"]), "type": st.sampled_from(["purchase", "refund"]),
    "payment_method": st.sampled_from(["UPI", "card", "wallet"]),
}), max_size=40)


@given(txs=transactions, batch=st.integers(1, 6), forget_every=st.sampled_from([0, 3]),
       ruleset=st.sampled_from([SHIPPED, WIDE, RULES]), in_order=st.booleans())
@settings(max_examples=60, deadline=None)
def test_the_detector_s_verdicts_and_explanations_are_the_old_ones_in_any_order(txs, batch, forget_every, ruleset,
                                                                                in_order):
    if in_order:
        txs = sorted(txs, key=lambda t: t["minute"])
    txs = [{**t, "transaction_id": f"T{i % 30}", "_id": f"T{i % 30}",
            "event_time": T0 + dt.timedelta(minutes=t["minute"])} for i, t in enumerate(txs)]
    with old_typologies():
        want = run(ruleset, txs, batch, forget_every)
    assert run(ruleset, txs, batch, forget_every) == want


class Counting(Sequence[Event]):
    """A plain history that counts the events read from it."""

    def __init__(self, events: list[Event]) -> None:
        self.events, self.reads = events, 0

    def __len__(self) -> int:
        return len(self.events)

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        found = self.events[i]
        self.reads += len(found) if isinstance(i, slice) else 1
        return found

    def __iter__(self) -> Iterator[Event]:
        for e in self.events:
            self.reads += 1
            yield e

    def __reversed__(self) -> Iterator[Event]:
        for e in reversed(self.events):
            self.reads += 1
            yield e


def month(n: int, location: str = "Mumbai") -> list[Event]:
    """`n` purchases of 100 with UPI spread over the 30 days before T0."""
    start = T0 - dt.timedelta(days=30)
    return [Event(start + dt.timedelta(days=30 * i / n), f"H{i}", location, 100.0, "purchase", "success", "UPI")
            for i in range(n)]


def test_a_big_amount_in_a_new_place_reads_the_month_once_for_all_its_signals():
    """Far above the usual, from a new place and country, with a new method: four signals over the
    same 30 days (before: four scans of them, one per signal)."""
    history = Counting(month(150))
    event = Event(T0 + dt.timedelta(hours=2), "N1", "London", 60_000.0, "purchase", "success", "card")
    found = weigh(plan(SHIPPED), event, history, SHIPPED)
    assert {h.name for h in found} == {"account_takeover", "high_value_new_country"}
    assert history.reads <= 150 + 10


def test_a_quick_move_asks_only_the_lookback_for_a_return_not_the_whole_history():
    """A move too fast for a plane asks whether it is a return to a place used before: only the
    `usual_lookback` (2 h) is read for that, not 30 days of history (before: all of it, each time)."""
    travel = parse_rules("""
version: travel
signals:
  fast_travel: {window: 6h, usual_lookback: 2h, lateness: 10m}
typologies:
  travel: {signals: {fast_travel: 100}, thresholds: {high: 100}}
""")
    history = Counting(month(200))
    event = Event(history.events[-1].event_time + dt.timedelta(minutes=5), "N1", "London", 100.0, "purchase",
                  "success", "UPI")
    assert [h.name for h in weigh(plan(travel), event, history, travel)] == ["travel"]
    assert history.reads <= 10


def test_a_shared_window_is_the_scan_and_is_scanned_once():
    history = Counting(month(40))
    prior = Shared(history)
    since = T0 - dt.timedelta(days=10)
    first = within(prior, since)
    assert first == within(history.events, since) and len(first) > 5
    reads = history.reads
    assert within(prior, since) is first and history.reads == reads


def walk_back(prior: Sequence[Event], since: dt.datetime) -> list[Event]:
    """`within` as it was for every sequence: through `reversed`."""
    out = []
    for e in reversed(prior):
        if e.event_time < since:
            break
        out.append(e)
    return out


@settings(max_examples=150, deadline=None)
@given(history=st.lists(events, max_size=40), queries=st.lists(st.tuples(st.integers(-10, 310), st.integers(0, 400)),
       min_size=1, max_size=6), extra=st.sampled_from([b"", b"", b"xy"]))
def test_a_lazy_history_s_window_is_the_walk_back_through_it(history, queries, extra):
    """Read straight from the decoded list (no generator): the same events, decoding no more than the
    walk back would (bisection may decode less), whatever was decoded before, bytes after the last text
    included."""
    history = sorted({e.transaction_id: e for e in history}.values(), key=lambda e: e.key)
    blob = pack_events(history) + extra
    fast, slow = Decoded(blob), Decoded(blob)
    for at, back in queries:
        t = T0 + dt.timedelta(minutes=at)
        since = t - dt.timedelta(minutes=back)
        got = within(Prior(fast, fast.upto(t)), since)
        assert got == newest_since(Prior(fast, fast.upto(t)), since) == walk_back(Prior(slow, slow.upto(t)), since)
        assert got == walk_back([e for e in history if e.event_time <= t], since)
        assert len(fast._suffix) <= len(slow._suffix)
