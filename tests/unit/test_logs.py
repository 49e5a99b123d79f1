"""Logging set-up: records go to the stderr of the moment they are emitted."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from txnmon.logs import configure_logging


@pytest.fixture
def restored_root():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_record_goes_to_the_stderr_in_place_when_it_is_logged(restored_root, monkeypatch):
    configure_logging()
    first, later = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logging.getLogger("txnmon.test").info("one")
    first.close()  # what pytest does to a test's captured stderr; a thread that outlives it still logs
    monkeypatch.setattr(sys, "stderr", later)
    logging.getLogger("txnmon.test").info("two")
    assert later.getvalue().rstrip().endswith("INFO txnmon.test two")
