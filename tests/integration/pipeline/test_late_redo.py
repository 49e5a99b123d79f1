"""#27 item 8: a batch redone after a crash flags late events as its first attempt did, so MongoDB and
the enriched topic agree on `late` (the watermarks are stored with MongoDB's writes, before the commit)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.fixtures.pipeline import T0, produce, read_topic, start_process, tx_row
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import TRANSACTIONS

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.faults]


def blocks(n: int) -> list[dict]:
    """One user (one partition). Each block: 12 rows two hours after the last block's, then 3 rows half an
    hour behind them: not late then, but late against the NEXT block's watermark. A batch holding a block's
    lagging rows and the next block's rows, judged again with its own advance, would flag them late."""
    rows, i = [], 0
    for b in range(n):
        base = T0 + dt.timedelta(hours=2 * b)
        for j in range(12):
            rows.append(tx_row(f"F{i:04d}", "U1", base + dt.timedelta(seconds=j)))
            i += 1
        for j in range(3):
            rows.append(tx_row(f"L{i:04d}", "U1", base - dt.timedelta(minutes=30, seconds=j)))
            i += 1
    rows.append(tx_row("OLD", "U1", T0 + dt.timedelta(hours=2 * n - 5)))  # really late: three hours behind
    return rows


def test_mongodb_and_the_enriched_topic_agree_on_late_after_a_crash_redo(settings_factory):
    s = settings_factory(batch_max_records=20, topic_partitions=1)
    rows = blocks(8)
    produce(s, rows)
    crashed = start_process(s, "--exit-when-idle", "6", TXNMON_FAILPOINTS="mongodb-written@3")
    out, _ = crashed.communicate(timeout=180)
    assert crashed.returncode == 137, out.decode()[-2000:]  # died after MongoDB, before the commit
    restarted = start_process(s, "--exit-when-idle", "4")
    out, _ = restarted.communicate(timeout=240)
    assert restarted.returncode == 0, out.decode()[-2000:]

    stored = {d["_id"]: d["late"] for d in MongoStore(s).find(TRANSACTIONS, projection={"late": 1})}
    enriched = {doc["_id"]: doc["late"] for doc in (json.loads(r.value) for r in read_topic(s, s.topic_enriched,
                                                                                            len(rows)))}
    assert len(stored) == len(rows) and enriched == stored
    assert {tid for tid, late in stored.items() if late} == {"OLD"}
