"""Every dashboard page with data, in headless Chromium: a generated day with a gateway outage, a product
spike and a new region through the real pipeline, rollups and signals; one screenshot per page
(docs/img with UPDATE_DOCS_IMAGES=1), the map drawn on country outlines."""

from __future__ import annotations

import pytest

from tests.fixtures.browser import screenshot_path
from tests.fixtures.pipeline import run_until_idle
from tests.integration.batch.test_business_signals import generated
from txnmon.adapters.mongo import MongoStore
from txnmon.jobs import business_signals, replay, rollups

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_each_page_shows_its_audiences_numbers(settings_factory, dashboard_factory, browser, tmp_path):
    s = settings_factory()
    replay.replay_csv(s, generated(tmp_path, with_events=True), speedup=0)
    run_until_idle(s)
    store = MongoStore(s)
    rollups.run_rollups(store)
    decided = business_signals.run_signals(store, s).closed_until
    assert decided is not None
    url = dashboard_factory(s)
    page = browser.new_page(viewport={"width": 1500, "height": 3300})  # Streamlit scrolls inside: all of a page

    page.goto(url)
    page.wait_for_selector("table.txnmon-trends", timeout=60_000)
    page.wait_for_function("document.querySelectorAll('.vega-embed').length >= 6", timeout=60_000)
    body = page.inner_text("body")
    for heading in ("Revenue by city", "Customers", "Payment health",
                    "Trends: fast-selling products, busy cities, new regions"):
        assert heading in body, heading
    metrics = {m.inner_text().split("\n")[0]: m.inner_text().split("\n")[-1]
               for m in page.query_selector_all('[data-testid="stMetric"]')}
    assert int(metrics["New customers"].replace(",", "")) > 2_000  # most of the day's 3,000 users
    assert metrics["Repeat-purchase rate"].endswith("%") and metrics["Payment alerts open"] == "0"
    assert len(page.inner_text("table.txnmon-top-customers").splitlines()) >= 10
    ops = page.inner_text("table.txnmon-ops-alerts")
    assert "UPI" in ops and "cleared" in ops and "2025-10-01 12:00" in ops
    trends = page.inner_text("table.txnmon-trends")
    assert "Air Fryer" in trends and "Bhopal" in trends and "new region" in trends
    # the map: the outlines of the countries in view under the cities (a path each), not the world's ~240
    outlines = page.eval_on_selector_all(".vega-embed svg g.mark-shape path", "els => els.length")
    assert 10 <= outlines < 100, outlines
    labels = page.eval_on_selector_all(".vega-embed svg text", "els => els.map(e => e.textContent)")
    assert {"Mumbai", "Delhi", "Chennai"} <= set(labels)  # the cities with the most revenue are named
    page.screenshot(path=screenshot_path("dashboard-business.png"), full_page=True)

    page.goto(url + "?page=Fraud")
    page.wait_for_selector("table.txnmon-alerts", timeout=60_000)
    assert "Alerts feed (newest first)" in page.inner_text("body")
    page.screenshot(path=screenshot_path("dashboard-fraud.png"), full_page=True)

    page.goto(url + "?page=Operations")
    page.wait_for_selector("table.txnmon-freshness", timeout=60_000)
    # the caption comes after the table in the same run: wait for it rather than read the body at once
    page.wait_for_selector(f"text=Business signals decided up to {decided:%Y-%m-%d %H:%M} UTC", timeout=30_000)
    assert "kpi_signals_5min" in page.inner_text("table.txnmon-freshness")
    page.screenshot(path=screenshot_path("dashboard-operations.png"), full_page=True)

    page.goto(url + "?page=Cases")
    page.wait_for_selector("table.txnmon-inbox", timeout=60_000)
    assert "Case inbox" in page.inner_text("body")
    page.screenshot(path=screenshot_path("dashboard-cases.png"), full_page=True)
    page.close()
