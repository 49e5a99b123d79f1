"""The events service's ops alerts (stock_depletion, stock_out, sentiment_drop) as notification events:
built from the episode as it opened, whatever later version of it the walk step holds, routed by kind,
once per alert and destination, and their product and location names are data in every message."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.notifications.samples import T0
from txnmon.core import sentiment, stock
from txnmon.notifications import messages
from txnmon.notifications import routes as routing
from txnmon.settings import DEFAULT_ROUTES_FILE

ROUTES = """
version: "1"
destinations:
  hook: {type: webhook, url_env: TXNMON_NOTIFY_HOOK_URL, secret_env: TXNMON_NOTIFY_HOOK_SECRET}
  chat: {type: slack, url_env: TXNMON_NOTIFY_CHAT_URL}
routes:
  - {name: fraud, events: [alert], to: [hook]}
  - {name: stock, events: [stock_depletion, stock_out], to: [hook, chat]}
  - {name: reviews, events: [sentiment_drop], to: [chat]}
"""
HOSTILE = "<!channel> *bold* <https://evil.example|click> & co"
CONFIG = stock.StockConfig(rate_window=dt.timedelta(minutes=120), lead_time=dt.timedelta(minutes=240),
                           margin=dt.timedelta(minutes=30))


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def steady(product: str = "Lamp", location: str = "Pune", units: int = 60) -> list[stock.Movement]:
    """A count of `units`, then one unit sold every 6 minutes until it runs out (and one more)."""
    return [stock.Movement(at(0), product, location, "c0", count=units),
            *(stock.Movement(at(6 * (i + 1)), product, location, f"s{i}", sold=1) for i in range(units + 1))]


def walked(moves: list[stock.Movement], cuts: list[int]) -> tuple[dict[str, dict], list[dict]]:
    """The walk split at `cuts` (minutes), as the job runs it: (every alert's last version by _id, the
    events the job queues: per step, those the step opened, built from the step's version)."""
    state, alerts, events = stock.StockState(), {}, []
    for cut in [*sorted(cuts), 10_000]:
        result = stock.walk(state, moves, at(cut), CONFIG)
        state = result.state
        alerts.update({a["_id"]: a for a in result.alerts})
        events += [routing.ops_alert_event(a) for a in result.alerts if a["_id"] in set(result.opened)]
    return alerts, events


def test_a_depletion_and_its_stock_out_are_each_one_event_with_the_projection_at_opening():
    alerts, events = walked(steady(), [])
    kinds = sorted(a["kind"] for a in alerts.values())
    assert kinds == [stock.STOCK_DEPLETION, stock.STOCK_OUT]
    assert sorted(e["id"] for e in events) == sorted(alerts)
    depletion = next(e for e in events if e["kind"] == stock.STOCK_DEPLETION)
    doc = alerts[depletion["id"]]
    assert doc["stocked_out_at"] is not None  # the stored episode moved on; the event did not
    assert "stocked_out_at" not in depletion and "status" not in depletion
    assert depletion["projected_stockout_at"].endswith("Z") and depletion["lead_time_minutes"] == 240
    assert depletion["product"] == "Lamp" and depletion["location"] == "Pune"
    assert depletion["title"] == "stock depletion: Lamp in Pune"
    assert depletion["level"] == doc["level"] and depletion["reason"] == doc["reason"]
    out = next(e for e in events if e["kind"] == stock.STOCK_OUT)
    assert out["depletion_alert"] == depletion["id"] and out["severity"] == "high"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 500), max_size=6))
def test_any_split_of_the_walk_queues_the_same_events_once(cuts):
    moves = steady() + steady("Kettle", "Delhi", 30)
    alerts, events = walked(moves, cuts)
    whole_alerts, whole_events = walked(moves, [])
    assert alerts == whole_alerts
    # one event per alert, byte for byte the same whichever step opened it
    assert sorted(json.dumps(e, sort_keys=True) for e in events) == \
        sorted(json.dumps(e, sort_keys=True) for e in whole_events)
    assert len({e["id"] for e in events}) == len(events) == 4


def test_an_episode_of_an_earlier_step_is_not_opened_again_when_it_stocks_out_or_clears():
    moves = [*steady(units=60), stock.Movement(at(500), "Lamp", "Pune", "d", delta=80)]
    first = stock.walk(stock.StockState(), moves, at(200), CONFIG)
    assert [a["kind"] for a in first.alerts if a["_id"] in first.opened] == [stock.STOCK_DEPLETION]
    second = stock.walk(first.state, moves, at(10_000), CONFIG)
    rewritten = {a["_id"]: a for a in second.alerts}
    assert first.opened[0] in rewritten and rewritten[first.opened[0]]["status"] == "cleared"
    assert [rewritten[i]["kind"] for i in second.opened] == [stock.STOCK_OUT]


def drop_episode(product: str = "Kettle") -> tuple[dict, list[str]]:
    """A product reviewed well for a day, then badly: the walk opens one drop."""
    config = sentiment.SentimentConfig(window_hours=6, baseline_hours=24, min_reviews=5, drop=0.4)
    stats = [sentiment.HourStats.from_document(
        {"hour": T0 + dt.timedelta(hours=h), "product_id": product, "reviews": 3,
         "rating_sum": 15 if h < 24 else 3, "sentiment_sum": 2.4 if h < 24 else -2.1, "negative": 0 if h < 24 else 3})
        for h in range(36)]
    result = sentiment.walk(sentiment.SentimentState(), stats, start=T0, end=T0 + dt.timedelta(hours=36),
                            config=config)
    return {e["_id"]: e for e in result.changed}, result.opened


def test_a_sentiment_drop_is_one_event_with_the_figures_at_opening():
    changed, opened = drop_episode()
    assert len(opened) == 1 and changed[opened[0]]["hours"] > 1  # extended after it opened
    event = routing.ops_alert_event(changed[opened[0]])
    assert event["kind"] == "sentiment_drop" and event["id"] == opened[0]
    assert event["product_id"] == "Kettle" and event["drop"] >= 0.4 and "hours" not in event
    assert event["opened_at"].endswith("Z") and event["title"] == "sentiment drop: Kettle"
    entries = routing.outbox_entries([event, event], routing.parse_routes(ROUTES), T0)
    # the same alert queued twice is the same entry id, which the outbox inserts only if absent
    assert {e["_id"] for e in entries} == {f"{opened[0]}|chat"}


def test_each_kind_goes_where_its_routes_send_it_once_per_destination():
    alerts, events = walked(steady(), [])
    entries = routing.outbox_entries(events + events, routing.parse_routes(ROUTES), T0)
    assert {e["_id"] for e in entries} == {f"{a}|{d}" for a in alerts for d in ("chat", "hook")}
    assert {e["kind"] for e in entries} == {stock.STOCK_DEPLETION, stock.STOCK_OUT}


def test_the_shipped_routes_send_ops_alerts_to_the_team_chat_once_enabled():
    shipped = routing.parse_routes(DEFAULT_ROUTES_FILE.read_text())
    _, events = walked(steady(), [])
    changed, opened = drop_episode()
    events.append(routing.ops_alert_event(changed[opened[0]]))
    assert all(routing.route(e, shipped) == [] for e in events)  # its destinations start disabled
    text = DEFAULT_ROUTES_FILE.read_text().replace("enabled: false\n    url_env: TXNMON_NOTIFY_SLACK",
                                                   "enabled: true\n    url_env: TXNMON_NOTIFY_SLACK")
    enabled = routing.parse_routes(text)
    assert sorted(e["kind"] for e in events if routing.route(e, enabled) == ["fraud-chat"]) == \
        ["sentiment_drop", "stock_depletion", "stock_out"]


def test_an_other_document_is_not_an_ops_alert():
    with pytest.raises(ValueError, match="not an ops alert kind"):
        routing.ops_alert_event({"_id": "x", "kind": "trending_product"})


def _strings(doc: object) -> list[str]:
    if isinstance(doc, dict):
        return [s for k, v in doc.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(doc, list):
        return [s for v in doc for s in _strings(v)]
    return [doc] if isinstance(doc, str) else []


def test_hostile_product_and_location_names_are_data_in_the_webhook_and_escaped_in_chat_and_mail():
    _, events = walked(steady(HOSTILE, HOSTILE), [])
    changed, opened = drop_episode(HOSTILE)
    events.append(routing.ops_alert_event(changed[opened[0]]))
    entries = routing.outbox_entries(events, routing.parse_routes(ROUTES), T0)
    assert len(entries) == 5
    for entry in entries:
        if entry["destination"] == "hook":
            body = json.loads(messages.webhook_body(entry))
            assert body["event"]["product"] == HOSTILE and body["kind"] == entry["kind"]
            continue
        shown = _strings(json.loads(messages.slack_body(entry)))
        assert any("&lt;!channel&gt;" in s for s in shown)  # there, as data
        for s in shown:
            assert "<!channel>" not in s and "<https://evil.example" not in s, s
            assert s.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "").count("&") == 0, s
        subject, _ = messages.email_message(entry)
        assert "\n" not in subject and subject.startswith("[txnmon] ")
