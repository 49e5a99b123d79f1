"""Stock depletion in event time (src/txnmon/core/stock.py): levels, the projection, one alert per
episode, stock-outs, hourly KPIs, and the same documents however the walk is split."""

from __future__ import annotations

import datetime as dt
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from txnmon.core.stock import (
    STOCK_DEPLETION,
    STOCK_OUT,
    Movement,
    StockConfig,
    StockState,
    projection,
    rate_per_hour,
    sale_movement,
    stock_movement,
    walk,
)

T0 = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
CONFIG = StockConfig(rate_window=dt.timedelta(minutes=120), lead_time=dt.timedelta(minutes=240),
                     margin=dt.timedelta(minutes=30))


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def count(minutes: float, n: int, product: str = "Lamp", location: str = "Pune") -> Movement:
    return Movement(at(minutes), product, location, f"c{minutes}", count=n)


def delta(minutes: float, n: int, product: str = "Lamp", location: str = "Pune") -> Movement:
    return Movement(at(minutes), product, location, f"d{minutes}", delta=n)


def sale(minutes: float, n: int = 1, product: str = "Lamp", location: str = "Pune") -> Movement:
    return Movement(at(minutes), product, location, f"s{minutes}", sold=n)


def steady(level: int, every: int, n: int, start: int = 0) -> list[Movement]:
    """An opening count, then one unit sold every `every` minutes, `n` times."""
    return [count(start, level), *(sale(start + every * (i + 1)) for i in range(n))]


def test_rate_and_projection():
    recent = [(at(0), 2.0), (at(60), 3.0), (at(119), 1.0)]
    assert rate_per_hour(recent, at(120), CONFIG) == 2.0  # the sale at 0 left the 120-minute window
    assert projection(10, 2.0, at(0)) == (300.0, at(300))
    assert projection(10, 0.0, at(0)) == (None, None)


def test_steady_sales_alert_at_least_the_lead_time_before_the_stock_out():
    moves = steady(100, 10, 100)  # 6 units an hour: 100 units last 1000 minutes
    result = walk(StockState(), moves, at(2000), CONFIG)
    depletion = [a for a in result.alerts if a["kind"] == STOCK_DEPLETION]
    outs = [a for a in result.alerts if a["kind"] == STOCK_OUT]
    assert len(depletion) == 1 and len(outs) == 1
    alert, out = depletion[0], outs[0]
    assert out["opened_at"] == at(1000) and out["level"] == 0
    assert alert["opened_at"] <= out["opened_at"] - CONFIG.lead_time
    assert alert["level"] > 0 and alert["rate_per_hour"] == 6.0
    assert alert["minutes_to_stockout"] < 270 and alert["projected_stockout_at"] > alert["opened_at"]
    assert alert["stocked_out_at"] == at(1000) and alert["status"] == "open"
    assert alert["lead_time_minutes"] == 240 and "Lamp in Pune" in alert["reason"]


def test_a_restock_clears_the_episode_and_a_new_one_opens_later():
    moves = [*steady(30, 10, 10), delta(101, 100), *(sale(101 + 10 * (i + 1)) for i in range(110))]
    result = walk(StockState(), moves, at(3000), CONFIG)
    depletion = sorted((a for a in result.alerts if a["kind"] == STOCK_DEPLETION), key=lambda a: a["opened_at"])
    assert len(depletion) == 2
    first, second = depletion
    assert first["status"] == "cleared" and first["cleared_at"] == at(101) and first["level_at_clear"] == 120
    assert second["opened_at"] > at(101) and second["status"] == "open"


def test_a_restock_too_small_keeps_the_episode_open():
    moves = [*steady(30, 10, 10), delta(101, 2), *(sale(101 + 10 * (i + 1)) for i in range(5))]
    result = walk(StockState(), moves, at(300), CONFIG)
    depletion = [a for a in result.alerts if a["kind"] == STOCK_DEPLETION]
    assert len(depletion) == 1 and depletion[0]["status"] == "open"


def test_plentiful_stock_raises_nothing_and_an_unknown_level_decides_nothing():
    result = walk(StockState(), steady(1000, 10, 100), at(2000), CONFIG)
    assert result.alerts == []
    result = walk(StockState(), [sale(i) for i in range(50)] + [delta(60, 5)], at(100), CONFIG)
    assert result.alerts == [] and result.levels == [] and result.hours == []


def test_stock_out_clears_on_restock():
    moves = [count(0, 2), sale(1), sale(2), sale(3), delta(30, 10)]
    result = walk(StockState(), moves, at(60), CONFIG)
    out = [a for a in result.alerts if a["kind"] == STOCK_OUT]
    assert len(out) == 1 and out[0]["opened_at"] == at(2) and out[0]["cleared_at"] == at(30)
    assert out[0]["restocked_to"] == 9
    assert result.levels[0]["level"] == 9 and result.levels[0]["stock_out_since"] is None


def test_hourly_kpis():
    moves = [count(0, 50), sale(10, 3), sale(20, 2), delta(30, 10), count(40, 50), sale(70, 1)]
    result = walk(StockState(), moves, at(120), CONFIG)
    first, second = sorted(result.hours, key=lambda h: h["hour"])
    assert first["hour"] == T0 and first["opening_level"] is None  # unknown before the first count
    assert (first["sold"], first["restocked"], first["adjusted"], first["closing_level"]) == (5, 10, -5, 50)
    assert first["rate_per_hour_at_close"] == 2.5 and first["hours_of_cover"] == 20
    assert second["opening_level"] == 50 and second["closing_level"] == 49 and second["sold"] == 1
    assert first["_id"] == "2025-10-01T00|Lamp|Pune"


def test_an_open_hour_is_not_closed_and_late_events_are_ignored():
    first = walk(StockState(), [count(0, 50), sale(10)], at(30), CONFIG)
    assert first.hours == []
    second = walk(first.state, [sale(20), sale(40)], at(61), CONFIG)  # 20 is before the walked time
    assert [h["sold"] for h in second.hours] == [2]


def test_from_stored_documents():
    m = stock_movement({"_id": "I1", "product_id": "Lamp", "location": "Pune", "delta": 4,
                        "event_time": T0.replace(tzinfo=None)})
    assert m.delta == 4 and m.at == T0 and m.count is None
    assert sale_movement({"_id": "t", "product": "Lamp", "location": "Pune", "event_time": T0,
                          "status": "failed"}) is None
    assert sale_movement({"_id": "t", "product": "Lamp", "location": "Pune", "event_time": T0,
                          "type": "refund"}) is None
    assert sale_movement({"_id": "t", "product": "Lamp", "location": "Pune", "event_time": T0}).sold == 1
    assert sale_movement({"_id": "t", "product": "Lamp", "location": "Pune", "event_time": T0,
                          "quantity": 3, "status": "success"}).sold == 3


def test_state_round_trips_through_its_document():
    result = walk(StockState(), steady(40, 10, 20), at(250), CONFIG)
    again = StockState.from_document(result.state.to_document())
    assert again.to_document() == result.state.to_document()


movement = st.builds(
    lambda minute, kind, n, product: (
        count(minute, n, product) if kind == 0 else delta(minute, n - 20, product) if kind == 1
        else sale(minute, max(n % 4, 1), product)),
    st.integers(0, 900), st.integers(0, 5), st.integers(0, 60), st.sampled_from(["Lamp", "Kettle"]))


def _final(moves: list[Movement], cuts: list[int]) -> tuple[dict, dict, list, dict]:
    state, alerts, hours, levels = StockState(), {}, {}, []
    for cut in [*sorted(cuts), 1000]:
        result = walk(state, moves, at(cut), CONFIG)
        state = result.state
        alerts.update({a["_id"]: a for a in result.alerts})
        hours.update({h["_id"]: h for h in result.hours})
        levels = result.levels
    # the state too (pruned pairs included): what the next run starts from must not depend on the chunks
    return alerts, hours, levels, {k: v.to_document(*k) for k, v in state.keys.items()}


def test_pairs_with_no_count_and_no_recent_sale_are_pruned_from_the_state():
    moves = [sale(0, 2, "Lamp"), sale(100, 1, "Kettle"), count(10, 5, "Desk"), sale(20, 1, "Desk")]
    state = walk(StockState(), moves, at(150), CONFIG).state
    # Lamp: no count, its only sale 150 min ago (window 120): nothing to keep; Kettle's sale is recent
    assert sorted(p for p, _ in state.keys) == ["Desk", "Kettle"]
    state = walk(state, [], at(300), CONFIG).state
    assert sorted(p for p, _ in state.keys) == ["Desk"]  # a known level is kept whatever its sales


@settings(max_examples=200, deadline=None)
@given(st.lists(movement, max_size=80), st.lists(st.integers(0, 1000), max_size=6))
def test_any_split_of_the_walk_gives_the_same_documents(moves, cuts):
    # ids must be unique per event, as stored events' are
    moves = [Movement(m.at, m.product, m.location, f"{m.event_id}-{i}", m.count, m.delta, m.sold)
             for i, m in enumerate(moves)]
    assert _final(moves, cuts) == _final(moves, [])
    assert _final(list(reversed(moves)), cuts) == _final(moves, [])


@settings(max_examples=200, deadline=None)
@given(st.lists(movement, max_size=80))
def test_at_most_one_open_depletion_episode_per_key(moves):
    moves = [Movement(m.at, m.product, m.location, f"{m.event_id}-{i}", m.count, m.delta, m.sold)
             for i, m in enumerate(moves)]
    alerts, _, _, _ = _final(moves, [])
    for product in ("Lamp", "Kettle"):
        episodes = sorted((a for a in alerts.values() if a["kind"] == STOCK_DEPLETION and a["product"] == product),
                          key=lambda a: a["opened_at"])
        assert all(a["status"] == "cleared" for a in episodes[:-1])
        for a, b in itertools.pairwise(episodes):
            assert a["cleared_at"] <= b["opened_at"]
