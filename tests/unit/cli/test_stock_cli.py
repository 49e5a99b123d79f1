"""`txnmon stock run`: its arguments and the settings it is built from."""

from __future__ import annotations

import datetime as dt

import pytest

from txnmon.cli import build_parser
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
