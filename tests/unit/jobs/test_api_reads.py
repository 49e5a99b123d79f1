"""The read side's MongoDB reads against an in-memory store: a refused alert ends a verdict's wait."""

import datetime as dt

from txnmon.api import decisions
from txnmon.core.collection_names import ALERTS, REJECTED, SUPPRESSED_ALERTS, TRANSACTIONS
from txnmon.jobs import api_reads

NOW = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


class Store:
    """`find` with the filters api_reads uses: equality and `$in`."""

    def __init__(self, data):
        self.data = data

    def find(self, collection, query, projection=None, sort=None, limit=0):
        def hit(doc):
            return all(doc.get(k) in v["$in"] if isinstance(v, dict) else doc.get(k) == v for k, v in query.items())
        return [dict(d) for d in self.data.get(collection, []) if hit(d)]


def tx(tid, offset, *rules):
    return {"_id": tid, "alert_reasons": list(rules), "risk_score": 70 if rules else 0, "rules_version": "2",
            "processed_time": NOW, "source": {"topic": "transactions.raw", "partition": 0, "offset": offset}}


def alert(tid, rule, severity):
    return {"_id": f"{tid}:{rule}", "transaction_id": tid, "rule": rule, "severity": severity, "mode": "live"}


def test_a_transaction_whose_alert_mongodb_refused_gets_a_definite_review_not_pending_forever():
    store = Store({
        TRANSACTIONS: [tx("T1", 7, "velocity", "high_amount"), tx("T2", 8, "velocity"), tx("T3", 9, "velocity")],
        ALERTS: [alert("T1", "velocity", "low")],
        SUPPRESSED_ALERTS: [],
        # T1's high_amount alert was refused for good: its record is in the DLQ at its source position;
        # T3's record is in the DLQ for another stage (a case), which leaves its alert to come
        REJECTED: [{"_id": "transactions.raw:0:7", "stage": "alerts", "reason": "store_refused"},
                   {"_id": "transactions.raw:0:9", "stage": "cases", "reason": "store_refused"}]})
    found = api_reads.stored_verdicts(store, ["T1", "T2", "T3"], about=True)
    assert decisions.is_final(*found["T1"]) and not decisions.is_complete(*found["T1"])
    answer = decisions.verdict(*found["T1"])
    assert answer["decision"] == "review" and answer["alerts_missing"] == ["T1:high_amount"]
    assert "could not be stored" in answer["note"] and "transactions.raw:0:7" in answer["note"]
    for pending in ("T2", "T3"):  # the alert may still come: pending, as before
        assert not decisions.is_final(*found[pending])


def test_a_refused_alert_never_turns_a_decline_into_a_review():
    store = Store({TRANSACTIONS: [tx("T1", 7, "high_value_new_country", "velocity")],
                   ALERTS: [alert("T1", "high_value_new_country", "high")], SUPPRESSED_ALERTS: [],
                   REJECTED: [{"_id": "transactions.raw:0:7", "stage": "alerts", "reason": "store_refused"}]})
    answer = decisions.verdict(*api_reads.stored_verdicts(store, ["T1"], about=True)["T1"])
    assert answer["decision"] == "decline" and answer["alerts_missing"] == ["T1:velocity"]
