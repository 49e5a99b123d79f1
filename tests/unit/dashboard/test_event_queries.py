"""The dashboard's cart and review figures: rates divided from summed counts (never a mean of per-hour
rates), products ranked by their summed sentiment, only open alerts of the asked kinds."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from txnmon.core.sentiment import SENTIMENT_DROP
from txnmon.core.stock import STOCK_KINDS
from txnmon.dashboard import event_queries as eq
from txnmon.dashboard.queries import Window

T = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
W = Window(T, T + dt.timedelta(days=2))


def test_the_funnel_rate_weighs_every_cart_once():
    # one hour with 1 cart abandoned, one with 99 carts of which 9 abandoned: 10/100, not (100% + 9%) / 2
    f = eq.funnel([{"carts": 1, "checkouts": 1, "purchased": 0, "abandoned": 1, "recovered": 1},
                   {"carts": 99, "checkouts": 50, "purchased": 90, "abandoned": 9, "recovered": 0}])
    assert (f["carts"], f["checkouts"], f["purchased"], f["abandoned"], f["recovered"]) == (100, 51, 90, 10, 1)
    assert f["abandonment_rate"] == 0.1 and f["recovery_rate"] == 0.1


def test_no_carts_is_no_rate_rather_than_zero():
    assert eq.funnel([])["abandonment_rate"] is None and eq.funnel([])["carts"] == 0


@given(st.lists(st.tuples(st.integers(1, 1000), st.integers(0, 1000)), min_size=1, max_size=20))
def test_rates_by_key_are_between_zero_and_one_and_sum_back(pairs):
    groups = [{"_id": f"p{i}", "carts": c, "abandoned": min(a, c)} for i, (c, a) in enumerate(pairs)]
    frame = eq.rates_by(groups, "product")
    assert frame["rate"].between(0, 1).all()
    assert int(frame["abandoned"].sum()) == sum(min(a, c) for c, a in pairs)
    assert list(frame["carts"]) == sorted(frame["carts"], reverse=True)  # most carts first


def test_a_cart_without_payment_method_is_listed_as_none():
    frame = eq.rates_by([{"_id": None, "carts": 2, "abandoned": 2}], "payment_method")
    assert list(frame["payment_method"]) == ["none"] and frame["rate"][0] == 1.0


class FakeDb:
    """Returns the groups or rows given, and records the queries the dashboard sends."""

    def __init__(self, groups=(), rows=()) -> None:
        self.groups, self.rows, self.calls = list(groups), list(rows), []

    def aggregate(self, collection, pipeline):
        self.calls.append((collection, pipeline))
        return self.groups

    def find(self, collection, query=None, sort=None, limit=0, projection=None):
        self.calls.append((collection, query, sort))
        return [dict(r) for r in self.rows]


def test_sentiment_means_come_from_the_summed_sums_lowest_first():
    groups = [{"_id": "Kettle", "reviews": 4, "rating_sum": 18, "sentiment_sum": 2.0, "negative": 0},
              {"_id": "<img src=x onerror=alert(1)>", "reviews": 10, "rating_sum": 15, "sentiment_sum": -6.0,
               "negative": 8},
              {"_id": "Lamp", "reviews": 1, "rating_sum": 1, "sentiment_sum": -0.9, "negative": 1}]
    table = eq.sentiment_by_product(FakeDb(groups), W)
    assert list(table["product"]) == ["Lamp", "<img src=x onerror=alert(1)>", "Kettle"]
    assert table["mean_sentiment"][1] == -0.6 and table["mean_rating"][2] == 4.5 and table["share_negative"][1] == 0.8
    low = eq.lowest_recent_sentiment(FakeDb(groups), W)
    assert list(low["product"]) == ["<img src=x onerror=alert(1)>", "Kettle"]  # Lamp: 1 review is no signal


def test_lowest_recent_sentiment_reads_only_the_windows_last_day():
    db = FakeDb()
    eq.lowest_recent_sentiment(db, W)
    (collection, pipeline), = db.calls
    assert collection == "kpi_sentiment_hour"
    assert pipeline[0]["$match"]["hour"] == {"$gte": W.end - dt.timedelta(days=1), "$lt": W.end}


def test_only_open_alerts_of_the_sections_kinds_are_asked_for():
    db = FakeDb()
    eq.open_stock_alerts(db)
    eq.open_sentiment_alerts(db)
    queries = [q for _, q, _ in db.calls]
    assert queries == [{"kind": {"$in": list(STOCK_KINDS)}, "status": "open"},
                       {"kind": {"$in": [SENTIMENT_DROP]}, "status": "open"}]


def test_interventions_show_their_products_as_text():
    db = FakeDb(rows=[{"_id": "repeat_abandoner:c1", "at": T, "trigger": "repeat_abandoner", "user_id": "u1",
                       "cart": "c1", "products": ["Lamp", "Kettle"], "value": 120.0, "payment_method": "UPI"}])
    frame = eq.interventions(db)
    assert frame["products"][0] == "Lamp, Kettle" and db.calls[0][2] == [("at", -1)]
