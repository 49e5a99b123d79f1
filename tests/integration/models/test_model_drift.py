"""The model drift check against the real MongoDB-wire server (src/txnmon/jobs/drift.py): a day of
stored scores like the reference's gives a stable report and no notification; a day of shifted scores a
drifted report and exactly one outbox entry, however often it is checked; a model registered without a
reference says so."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pytest

from txnmon.adapters.mongo import ModelVersionsRepository, MongoStore
from txnmon.core import drift as core_drift
from txnmon.core.collection_names import MODEL_VERSIONS, NOTIFICATIONS, QUALITY_REPORTS, TRANSACTIONS
from txnmon.jobs import drift

pytestmark = [pytest.mark.integration]

ROUTES = """version: "test"
destinations:
  hook: {type: webhook, url_env: TXNMON_NOTIFY_HOOK_URL, secret_env: TXNMON_NOTIFY_HOOK_SECRET}
routes:
  - {name: ops, events: [quality_failed], to: [hook]}
"""
CALM, SHIFTED = dt.date(2026, 3, 2), dt.date(2026, 3, 3)


def _scores(rng: random.Random, n: int, shift: float = 0.0) -> list[float]:
    # fraud-model-like scores: most near 0, a tail towards 1
    return [min(1.0, rng.betavariate(1, 12) + shift) for _ in range(n)]


def _store_day(store: MongoStore, version: str, day: dt.date, scores: list[float]) -> None:
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    store.db[TRANSACTIONS].insert_many(
        [{"_id": f"{version}-{day}-{i}", "processed_time": start + dt.timedelta(seconds=30 * i),
          "model": {"version": version, "score": s}} for i, s in enumerate(scores)])


def test_shifted_scores_drift_and_notify_once_calm_ones_do_not(settings_factory, tmp_path: Path, monkeypatch,
                                                                capsys) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    s = settings_factory(create_topics=False, notify_routes_file=routes)
    store = MongoStore(s)
    rng = random.Random(7)
    reference = core_drift.model_reference(_scores(rng, 3000), [(0.0,)] * 10, ["amount"])
    repo = ModelVersionsRepository(store)
    store.db[MODEL_VERSIONS].insert_one({"_id": "rm-1", "created_at": dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
                                         "sha256": "x", "reference": reference})
    repo.promote("rm-1", at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC), by="test")
    _store_day(store, "rm-1", CALM, _scores(rng, 1000))
    _store_day(store, "rm-1", SHIFTED, _scores(rng, 1000, shift=0.3))
    _store_day(store, "rm-0", SHIFTED, [0.99] * 500)  # another version's scores are not this one's drift

    calm = drift.check_day(s, CALM)
    assert calm["drift"][0]["n"] == 1000 and calm["drift"][0]["status"] == "stable", calm["drift"]
    assert calm["success"] is True
    assert store.count(NOTIFICATIONS) == 0

    for _ in range(2):  # checked again (the CLI, a re-run): the same report, the same one entry
        shifted = drift.check_day(s, SHIFTED)
    row = shifted["drift"][0]
    assert row["n"] == 1000 and row["status"] == "drifted" and row["psi"] > core_drift.DRIFTED_ABOVE
    stored = store.find_one(QUALITY_REPORTS, {"_id": "model_drift:rm-1:2026-03-03"})
    assert stored["success"] is False and stored["drift"][0]["status"] == "drifted"
    entries = store.find(NOTIFICATIONS, {})
    assert [e["_id"] for e in entries] == ["model_drift:rm-1:2026-03-03|hook"]
    assert "rm-1 drifted on 2026-03-03" in entries[0]["event"]["title"]

    # the command prints the table, and queues nothing more
    from txnmon.cli import main

    monkeypatch.setattr("txnmon.cli.base.load_settings", lambda: s)
    assert main(["models", "drift", "--day", "2026-03-03"]) == 0
    out = capsys.readouterr().out
    assert "model rm-1" in out and "drifted" in out and f"{row['psi']:.3f}" in out
    assert store.count(NOTIFICATIONS) == 1

    # the DAG task: the day before the interval's end, once per version and day
    end = dt.datetime(2026, 3, 4, 1, tzinfo=dt.UTC)
    assert drift.drift_task(s, end)["status"] == "checked already"
    assert drift.drift_task(s, end - dt.timedelta(days=2))["drift"][0]["n"] == 0  # 2026-03-01: no scores

    # a version registered before references existed: said, never an alarm
    store.db[MODEL_VERSIONS].insert_one({"_id": "rm-old", "created_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)})
    repo.promote("rm-old", at=dt.datetime(2026, 3, 4, tzinfo=dt.UTC), by="test")
    _store_day(store, "rm-old", dt.date(2026, 3, 5), [0.99] * 200)
    assert drift.check_day(s, dt.date(2026, 3, 5))["drift"][0]["status"] == "no reference"
    assert store.count(NOTIFICATIONS) == 1
