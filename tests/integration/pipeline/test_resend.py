"""Identical re-sends on the real stack (#27 item 2): a file sent twice, with every tenth record sent once
more in between, and a processor restarted between the sends (its state restored from the changelog),
stores exactly what one clean pass stores."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from tests.fixtures.pipeline import run_until_idle
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import ALERTS, CASES, REJECTED, SUPPRESSED_ALERTS, TRANSACTIONS
from txnmon.jobs import replay
from txnmon.settings import Settings
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def stored(settings: Settings) -> dict[str, Any]:
    db = MongoStore(settings)
    return {
        "verdicts": {d["_id"]: (d["alert_reasons"], d["risk_score"], d["late"]) for d in db.find(TRANSACTIONS)},
        "alerts": sorted(d["_id"] for d in db.find(ALERTS, projection={"_id": 1})),
        "suppressed": sorted(d["_id"] for d in db.find(SUPPRESSED_ALERTS, projection={"_id": 1})),
        "cases": {d["_id"]: sorted(d["alert_ids"]) for d in db.find(CASES)},
        "rejected": db.count(REJECTED),
    }


def test_a_file_sent_twice_with_every_tenth_record_resent_stores_what_one_clean_pass_stores(settings_factory,
                                                                                              tmp_path):
    # ten users: enough events each that a copy judged again meets later arrivals (2 extra alerts before #27)
    rows = generate(GeneratorSpec(rows=400, users=10, fraud_rate=0.05, seed=31))
    day, tenth = tmp_path / "day.csv", tmp_path / "tenth.csv"
    write_csv(rows, day)
    write_csv(rows.iloc[::10], tenth)

    clean = settings_factory()
    replay.replay_csv(clean, day)
    run_until_idle(clean)
    expected = stored(clean)
    assert len(expected["verdicts"]) == 400 and expected["alerts"] and expected["cases"]

    resent = settings_factory()
    for path in (day, tenth, day):  # each pass by a new processor, restored from the changelog
        replay.replay_csv(resent, path)
        run_until_idle(resent)
    assert stored(resent) == expected


def test_a_redelivery_to_a_new_consumer_group_stores_what_one_clean_pass_stores(settings_factory, tmp_path):
    # an operator's offset reset: the same topics and database, a new group id, so the raw topic is
    # read again from the start and re-keyed again, next to the by-user records of the first pass,
    # and the users' state comes back from the changelog as the first pass left it. Three events
    # kept per user: most of the first pass's records come back beyond their users' histories, and
    # the first of a five-item checkout (one event time) judged again sees the four after it: a
    # velocity alert it never had (before the fix)
    rows = generate(GeneratorSpec(rows=400, users=10, fraud_rate=0.05, seed=31))
    checkout = pd.DataFrame([{**rows.iloc[0].to_dict(), "transaction_id": f"CHECKOUT-{i}", "user_id": "U-CHECKOUT",
                              "timestamp": "2025-10-01T12:00:00Z"} for i in range(5)])
    day, rules = tmp_path / "day.csv", tmp_path / "rules.yaml"
    write_csv(pd.concat([rows, checkout], ignore_index=True), day)
    rules.write_text("state:\n  max_events_per_user: 3\n")
    first = settings_factory(rules_file=rules)
    replay.replay_csv(first, day)
    run_until_idle(first)
    expected = stored(first)
    assert len(expected["verdicts"]) == 405 and "CHECKOUT-3:velocity" in expected["alerts"]

    reset = first.model_copy(update={"consumer_group": f"{first.consumer_group}-reset"})
    processor = run_until_idle(reset)
    assert processor.batches > 0  # it did read everything again
    assert stored(reset) == expected
