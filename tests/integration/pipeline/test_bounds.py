"""One user's hostile-but-valid-looking messages stop nothing (issue #27 item 1): against the real stack.

180 messages with 60 KB transaction ids within 10 minutes once made a 21 MB velocity alert; the
MongoDB-wire server closed the connection on it, and the processor retried that batch for ever.
Here the same 180 (and 180 with ids of the longest accepted length, and a quiet user behind them): every
message is stored or in the DLQ with a reason, the processor drains the topic, and the lag is back to 0.
"""

from __future__ import annotations

import datetime as dt

import bson
import pytest

from tests.fixtures.pipeline import T0, produce, run_until_idle, stored_ids, tx_row
from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import ALERTS, REJECTED
from txnmon.errors import StoreRefused

pytestmark = pytest.mark.integration
MAX_ID_CHARS = 128  # txnmon.core.contract.MAX_ID_CHARS, spelt out so the test runs against older code too


def test_a_user_sending_many_messages_with_long_ids_stops_nothing(isolated_settings):
    s = isolated_settings
    n = 180
    at = [T0 + dt.timedelta(seconds=3 * i) for i in range(n)]  # all within 9 minutes
    huge = [tx_row(f"{i:03d}" + "x" * 60_000, "U-LOUD", at[i], 100.0) for i in range(n)]
    longest = [tx_row(f"{i:03d}" + "y" * (MAX_ID_CHARS - 3), "U-LOUD", at[i] + dt.timedelta(seconds=1), 100.0)
               for i in range(n)]
    quiet = [tx_row(f"Q{i:03d}", "U-QUIET", at[i] + dt.timedelta(seconds=2), 100.0) for i in range(0, n, 6)]
    rows = [r for i in range(n) for r in (huge[i], longest[i], *([quiet[i // 6]] if i % 6 == 0 else []))]
    produce(s, rows)

    processor = run_until_idle(s, idle_s=3.0, timeout=150)

    assert processor.batches > 0
    assert stored_ids(s, "transactions") == sorted(r["transaction_id"] for r in longest + quiet)
    store = MongoStore(s)
    rejected = store.find(REJECTED, projection={"reason": 1, "detail": 1})
    assert len(rejected) == n
    assert all(d["reason"] == "bad_field" and "transaction_id" in d["detail"] and str(MAX_ID_CHARS) in d["detail"]
               for d in rejected)
    alerts = store.find(ALERTS, {"user_id": "U-LOUD"})
    assert alerts, "the burst of accepted ones is still alerted on"
    assert any(a.get("explanation", {}).get("counted_total", 0) > 50 for a in alerts)
    assert max(len(bson.encode(a)) for a in alerts) < 256 * 1024
    for topic in (s.topic_raw, s.topic_by_user):
        assert sum(kafka.consumer_lag(s, s.consumer_group, topic).values()) == 0, topic


def test_a_document_over_16_mib_is_refused_by_index_and_the_others_stored(isolated_settings):
    """The MongoDB-wire server closes the connection on an oversized document (an outage, retried for
    ever); the store refuses it before sending, names it, and inserts the rest."""
    store = MongoStore(isolated_settings)
    docs = [{"_id": "a"}, {"_id": "b", "blob": "x" * (17 * 1024 * 1024)}, {"_id": "c"}]
    with pytest.raises(StoreRefused) as caught:
        store.insert_missing("bounds_probe", docs)
    assert list(caught.value.refused) == [1] and "16777216" in caught.value.refused[1]
    assert sorted(d["_id"] for d in store.find("bounds_probe")) == ["a", "c"]
