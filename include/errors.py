"""Exceptions that end a command with a clear one-line message instead of a traceback."""

from __future__ import annotations

from include.kafka_io import KafkaUnavailable, TopicMissing
from include.mongo_io import MongoUnavailable


class InvalidInputFile(ValueError):
    """An input file (CSV, rules YAML) failed validation; the message lists the problems."""


def describe_runtime_error(exc: BaseException) -> str | None:
    """A user-facing message for expected failures, or None to let the traceback show."""
    if isinstance(exc, KafkaUnavailable):
        return f"Kafka unavailable: {exc} (is the stack up? try `make up`)"
    if isinstance(exc, MongoUnavailable):
        return f"MongoDB unavailable: {exc} (is the stack up? try `make up`)"
    if isinstance(exc, TopicMissing | InvalidInputFile):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {exc.filename}"
    return None
