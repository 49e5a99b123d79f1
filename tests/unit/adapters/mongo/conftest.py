"""A MongoStore over recording fake collections (fakes.py), for the tests of this package."""

from __future__ import annotations

import pytest

from txnmon.adapters.mongo import MongoStore
from txnmon.settings import load_settings

from .fakes import FakeDb


@pytest.fixture
def fake_db(monkeypatch) -> FakeDb:
    db = FakeDb()
    monkeypatch.setattr(MongoStore, "db", property(lambda self: db))
    return db


@pytest.fixture
def store(fake_db) -> MongoStore:
    return MongoStore(load_settings(metrics_port=0))
