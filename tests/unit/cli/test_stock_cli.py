"""`txnmon stock run`: its arguments and the settings it is built from."""

from __future__ import annotations

import datetime as dt

import pytest

from txnmon.cli import build_parser, main
from txnmon.core.event_batch import capped_until
from txnmon.errors import ConfigError
from txnmon.jobs.stock import stock_config
from txnmon.settings import load_settings


def test_until_is_an_aware_event_time():
    args = build_parser().parse_args(["stock", "run", "--until", "2025-10-01T12:00"])
    assert args.until == dt.datetime(2025, 10, 1, 12, tzinfo=dt.UTC) and args.stock_command == "run"
    assert build_parser().parse_args(["stock", "run"]).until is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["stock", "run", "--until", "24h"])  # an event time, never "from now"


def test_stock_settings_are_validated_and_become_the_config():
    config = stock_config(load_settings(stock_rate_window_minutes=60, stock_lead_time_minutes=90,
                                        stock_alert_margin_minutes=0))
    assert (config.rate_window, config.lead_time, config.threshold) == (
        dt.timedelta(minutes=60), dt.timedelta(minutes=90), dt.timedelta(minutes=90))
    for bad in ({"stock_lead_time_minutes": 0}, {"stock_rate_window_minutes": 0},
                {"stock_alert_margin_minutes": -1}):
        with pytest.raises(ConfigError):
            load_settings(**bad)


def test_until_is_capped_at_the_closed_event_time_and_defaults_to_it():
    closed = dt.datetime(2025, 10, 1, 12, tzinfo=dt.UTC)
    later, earlier = closed + dt.timedelta(hours=20), closed - dt.timedelta(hours=1)
    assert capped_until(None, closed) == (closed, False)
    assert capped_until(later, closed) == (closed, True)  # a future --until would skip events for good
    assert capped_until(earlier, closed) == (earlier, False)
    assert capped_until(earlier, None) == (None, True)


@pytest.mark.parametrize("command", ["stock", "sentiment"])
def test_a_run_by_hand_walks_to_what_txnmon_events_closed_at_most(monkeypatch, capsys, command):
    from txnmon.adapters import mongo
    from txnmon.jobs import sentiment, stock
    from txnmon.services import events_wiring

    closed = dt.datetime(2025, 10, 1, 12, tzinfo=dt.UTC)
    walked: list[dt.datetime] = []
    monkeypatch.setattr(mongo, "MongoStore", lambda settings: "store")
    monkeypatch.setattr(events_wiring, "closed_event_time_now", lambda settings, store: closed)
    for module, name in ((stock, "run_stock"), (sentiment, "run_sentiment")):
        monkeypatch.setattr(module, name, lambda store, settings, *, closed_until, trigger: walked.append(
            closed_until) or (_ for _ in ()).throw(SystemExit(0)))
    for argv in ([command, "run"], [command, "run", "--until", "2025-10-02T09:00"]):
        with pytest.raises(SystemExit):
            main(argv)
    assert walked == [closed, closed]
    assert "--until capped at the closed event time" in capsys.readouterr().out
