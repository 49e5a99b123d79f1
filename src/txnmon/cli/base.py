"""What every command shares: argument types, settings and logging set-up, and the one place
where a `TxnmonError` becomes a message and an exit code."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Callable, Sequence

from txnmon.core.rules.rulebook import parse_duration
from txnmon.errors import ConfigError, TxnmonError, UsageError
from txnmon.logs import configure_logging
from txnmon.settings import Settings, load_settings

Command = Callable[[Settings, argparse.Namespace], int]


__all__ = ["Command", "UsageError", "positive_float", "positive_int", "since", "to_date", "until_time"]


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def to_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def moment(text: str, direction: int, example: str) -> dt.datetime:
    """An ISO date/time (UTC if no zone) or a duration from now, back (-1) or ahead (+1)."""
    try:
        return dt.datetime.now(dt.UTC) + direction * parse_duration(text)
    except ValueError:
        pass
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time or a duration ({example}): {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def since(text: str) -> dt.datetime:
    """An ISO date/time (UTC if no zone) or a duration back from now: 90m, 24h, 7d."""
    return moment(text, -1, "2025-10-01T12:00, 24h")


def until_time(text: str) -> dt.datetime:
    """An ISO date/time, UTC if no zone (an event time, never a duration from now)."""
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date/time (2025-10-01T12:00, UTC if no zone): {text!r}") from None
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def closed_event_time(settings: Settings, store: object, requested: dt.datetime | None) -> dt.datetime | None:
    """How far `txnmon stock|sentiment run` walk: the closed event time `txnmon events` computes (the same
    function), or `--until` when earlier; says so when `--until` is capped. None: nothing is closed yet."""
    from txnmon.core.event_batch import capped_until
    from txnmon.services.events_wiring import closed_event_time_now

    closed = closed_event_time_now(settings, store)  # type: ignore[arg-type]
    until, capped = capped_until(requested, closed)
    if until is None:
        print("no closed event time yet: `txnmon events` has not stored every event partition's backlog, "
              "or the processor has no watermark yet (docs/events.md)")
    elif capped:
        print(f"--until capped at the closed event time, {until:%Y-%m-%d %H:%M:%S} UTC: later events may "
              "still arrive, and a walked time is never walked again")
    return until


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse, load settings, run the chosen command; every expected failure is one line on stderr.

    Exit codes: 0 ok, 1 runtime failure (a service down, a rejected file), 2 bad arguments or config.
    """
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"txnmon: {exc}", file=sys.stderr)
        return exc.exit_code
    configure_logging(logging.DEBUG if args.verbose else logging.INFO, settings.log_format,
                      client_logs=logging.WARNING if args.verbose else logging.CRITICAL)
    try:
        return args.func(settings, args)
    except KeyboardInterrupt:
        return 130
    except TxnmonError as exc:
        print(f"txnmon: {exc.describe()}", file=sys.stderr)
        return exc.exit_code
    except FileNotFoundError as exc:
        print(f"txnmon: file not found: {exc.filename}", file=sys.stderr)
        return 1
