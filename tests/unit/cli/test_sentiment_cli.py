"""`txnmon sentiment run`: its arguments, checked before any client is made."""

from __future__ import annotations

import datetime as dt

import pytest

from txnmon.cli import build_parser, main


def test_until_is_read_as_utc_when_it_names_no_zone():
    args = build_parser().parse_args(["sentiment", "run", "--until", "2025-10-01T12:30"])
    assert args.until == dt.datetime(2025, 10, 1, 12, 30, tzinfo=dt.UTC) and not args.json
    args = build_parser().parse_args(["sentiment", "run", "--until", "2025-10-01T12:30+05:30", "--json"])
    assert args.until == dt.datetime(2025, 10, 1, 7, 0, tzinfo=dt.UTC) and args.json


def test_a_bad_until_or_no_action_is_a_usage_error(capsys):
    for argv in (["sentiment", "run", "--until", "yesterday-ish"], ["sentiment"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "not an ISO date/time" in capsys.readouterr().err
