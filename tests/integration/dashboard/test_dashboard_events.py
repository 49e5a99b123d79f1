"""The event walks on the dashboard, in headless Chromium: Carts and Reviews on the Business page, open
stock alerts with their projection and interventions on the Operations page. The walks' outputs are
seeded directly (a few documents), one product name hostile: it must show as text, never as markup."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.fixtures.browser import screenshot_path
from txnmon.adapters.mongo import MongoStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOSTILE = "<img src=x onerror=alert(1)>"
T = dt.datetime(2025, 10, 1, 18, 30, tzinfo=dt.UTC)
HOUR = T.replace(minute=0)


def _cart(key: str, outcome: str, checkout: bool, method: str | None, recovered: bool | None) -> dict:
    return {"_id": key, "outcome": outcome, "user_id": f"U-{key}", "hour": HOUR, "first_event_time": HOUR,
            "last_event_time": T, "deadline": T, "products": [HOSTILE], "value": 100.0,
            "reached_checkout": checkout, "payment_method": method, "recovered": recovered}


def _seed(store: MongoStore) -> None:
    store.ensure_indexes()
    seed = {
        "kpi_revenue_minute": [{"_id": f"{m:%Y-%m-%dT%H:%M}", "minute": m, "revenue": 1000.0, "transactions": 2,
                                "alerted_transactions": 0} for m in (T - dt.timedelta(hours=1), T)],
        # 5 carts over two hours: 4 reached checkout, 2 bought, 3 abandoned (60%), 1 of them recovered
        "cart_outcomes": [_cart("c1", "purchased", True, "UPI", None), _cart("c2", "abandoned", True, "Card", True),
                          _cart("c3", "abandoned", False, None, False), _cart("c4", "abandoned", True, "UPI", None),
                          {**_cart("c5", "purchased", True, "UPI", None), "hour": HOUR - dt.timedelta(hours=1)}],
        "kpi_abandonment_hour": [
            {"_id": "a1", "hour": HOUR, "product": HOSTILE, "payment_method": "UPI", "carts": 3, "abandoned": 2,
             "recovered": 1, "rate": 2 / 3},
            {"_id": "a2", "hour": HOUR, "product": "Desk Lamp", "payment_method": "Card", "carts": 1,
             "abandoned": 1, "recovered": 0, "rate": 1.0}],
        "kpi_sentiment_hour": [
            {"_id": "s1", "hour": HOUR, "product_id": HOSTILE, "reviews": 4, "rating_sum": 6, "sentiment_sum": -2.4,
             "negative": 3, "mean_rating": 1.5, "mean_sentiment": -0.6, "share_negative": 0.75},
            {"_id": "s2", "hour": HOUR, "product_id": "Kettle", "reviews": 5, "rating_sum": 22, "sentiment_sum": 3.0,
             "negative": 0, "mean_rating": 4.4, "mean_sentiment": 0.6, "share_negative": 0.0}],
        "ops_alerts": [
            {"_id": "sentiment_drop|x", "kind": "sentiment_drop", "key": HOSTILE, "product_id": HOSTILE,
             "status": "open", "opened_at": HOUR, "cleared_at": None, "baseline": 0.5, "recent": -0.6,
             "drop": 1.1, "reviews": 4, "reason": "mean sentiment fell 1.10"},
            {"_id": "stock_depletion|x", "kind": "stock_depletion", "product": HOSTILE, "location": "Pune",
             "status": "open", "opened_at": T, "cleared_at": None, "level": 12, "rate_per_hour": 3.0,
             "minutes_to_stockout": 240.0, "projected_stockout_at": T + dt.timedelta(hours=4),
             "lead_time_minutes": 240.0, "reason": "12 left, 3.0 sold per hour"},
            {"_id": "stock_out|y", "kind": "stock_out", "product": "Desk Lamp", "location": "Delhi",
             "status": "open", "opened_at": T, "cleared_at": None, "level": 0, "reason": "out of stock"},
            {"_id": "stock_depletion|z", "kind": "stock_depletion", "product": "Cleared Kettle", "location": "Pune",
             "status": "cleared", "opened_at": HOUR, "cleared_at": T, "level": 50, "reason": "restocked"}],
        "interventions": [
            {"_id": "after_failed_payment:c2", "trigger": "after_failed_payment", "user_id": "U-c2", "cart": "c2",
             "at": T, "products": [HOSTILE], "value": 2500.0, "payment_method": "Card", "failed_transaction": "T9"}],
    }
    for name, docs in seed.items():
        store.collection(name).insert_many(docs)


def test_carts_reviews_and_stock_projection_sections(isolated_settings, dashboard_factory, browser):
    store = MongoStore(isolated_settings)
    _seed(store)
    url = dashboard_factory(isolated_settings)
    page = browser.new_page(viewport={"width": 1500, "height": 3600})

    page.goto(url)
    page.wait_for_selector("table.txnmon-sentiment-alerts", timeout=60_000)
    body = page.inner_text("body")
    for heading in ("Carts: funnel and abandonment", "Reviews: rating and sentiment per product",
                    "Lowest sentiment, last 24 hours of the range"):
        assert heading in body, heading
    metrics = {m.inner_text().split("\n")[0]: m.inner_text().split("\n")[-1]
               for m in page.query_selector_all('[data-testid="stMetric"]')}
    assert (metrics["Carts"], metrics["Checkouts started"], metrics["Purchased"], metrics["Abandoned"],
            metrics["Abandonment rate"], metrics["Recovered carts"]) == ("5", "4", "2", "3", "60.0%", "1")
    # the per-hour chart (two hours of carts); Vega draws it after the run, so wait for its axis title
    page.wait_for_function("[...document.querySelectorAll('.vega-embed svg text')]"
                           ".some(e => e.textContent === 'abandonment rate')", timeout=30_000)
    products = page.inner_text("table.txnmon-cart-products")
    assert HOSTILE in products and "66.7%" in products and "100.0%" in products
    payments = page.inner_text("table.txnmon-cart-payments")
    assert "UPI" in payments and "none" in payments and "33.3%" in payments  # UPI: 1 of 3 abandoned
    sentiment = page.inner_text("table.txnmon-sentiment")
    assert sentiment.index(HOSTILE) < sentiment.index("Kettle") and "-0.60" in sentiment and "1.50" in sentiment
    assert HOSTILE in page.inner_text("table.txnmon-sentiment-low")
    assert "Open sentiment drops" in body and "+1.10" in page.inner_text("table.txnmon-sentiment-alerts")
    assert page.query_selector_all("img[src='x']") == []  # the name is text, no element
    page.screenshot(path=screenshot_path("dashboard-business-carts-reviews.png"), full_page=True)

    page.goto(url + "?page=Operations")
    page.wait_for_selector("table.txnmon-interventions", timeout=60_000)
    stock = page.inner_text("table.txnmon-stock-projection")
    assert HOSTILE in stock and "Desk Lamp" in stock and "Cleared Kettle" not in stock  # open ones only
    assert "2025-10-01 22:30" in stock and "3.00" in stock and "240" in stock  # projection, rate, lead time
    interventions = page.inner_text("table.txnmon-interventions")
    assert "after failed payment" in interventions and "2,500" in interventions and HOSTILE in interventions
    assert page.query_selector_all("img[src='x']") == []
    page.screenshot(path=screenshot_path("dashboard-operations-stock.png"), full_page=True)
    page.close()
