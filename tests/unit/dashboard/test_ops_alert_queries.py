"""Operational alerts on the dashboard: each section asks for its own kinds, so many stock alerts never
crowd the payment spikes out of the payment-health table."""

from __future__ import annotations

import datetime as dt

from txnmon.core.business_signals import PAYMENT_SPIKE
from txnmon.core.stock import STOCK_DEPLETION, STOCK_KINDS
from txnmon.dashboard.queries import ops_alerts

T = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)


class FakeDb:
    def __init__(self, docs: list[dict]) -> None:
        self.docs = docs

    def find(self, collection, query=None, sort=None, limit=0, projection=None):
        assert collection == "ops_alerts" and sort == [("opened_at", -1)]
        wanted = (query or {}).get("kind", {}).get("$in")
        rows = [d for d in self.docs if wanted is None or d["kind"] in wanted]
        rows.sort(key=lambda d: d["opened_at"], reverse=True)
        return rows[:limit] if limit else rows


def test_payment_spikes_are_not_crowded_out_by_stock_alerts():
    docs = [{"_id": "p", "kind": PAYMENT_SPIKE, "status": "open", "opened_at": T, "payment_method": "UPI"}]
    docs += [{"_id": f"s{i}", "kind": STOCK_DEPLETION, "status": "open", "opened_at": T + dt.timedelta(minutes=i),
              "product": "Lamp", "location": "Pune"} for i in range(1, 80)]
    payment = ops_alerts(FakeDb(docs), kinds=[PAYMENT_SPIKE])
    assert list(payment["_id"]) == ["p"]
    stock = ops_alerts(FakeDb(docs), kinds=STOCK_KINDS)
    assert len(stock) == 50 and set(stock["kind"]) == {STOCK_DEPLETION} and "product" in stock.columns
