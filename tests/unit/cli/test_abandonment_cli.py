"""`txnmon abandonment run [--until ISO]`: the arguments, and the settings it is run with."""

from __future__ import annotations

import datetime as dt

import pytest

from txnmon.cli import abandonment, build_parser
from txnmon.errors import ConfigError
from txnmon.settings import load_settings


def test_until_is_read_as_utc_unless_it_names_a_zone():
    args = build_parser().parse_args(["abandonment", "run", "--until", "2025-10-01T12:00"])
    assert args.func is abandonment.cmd_run and args.until == dt.datetime(2025, 10, 1, 12, tzinfo=dt.UTC)
    args = build_parser().parse_args(["abandonment", "run", "--until", "2025-10-01T12:00+05:30"])
    assert args.until == dt.datetime(2025, 10, 1, 6, 30, tzinfo=dt.UTC)
    assert build_parser().parse_args(["abandonment", "run"]).until is None


def test_a_bad_until_is_refused(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["abandonment", "run", "--until", "noon"])
    assert "not an ISO date/time" in capsys.readouterr().err


@pytest.mark.parametrize("name,value", [("abandon_timeout_minutes", 121), ("abandon_timeout_minutes", 29),
                                        ("abandon_repeat_count", 1), ("abandon_after_failed_minutes", 0)])
def test_settings_refuse_a_timeout_past_the_generators_quiet_time_and_other_nonsense(name, value):
    with pytest.raises(ConfigError, match=name.upper()):
        load_settings(**{name: value})
