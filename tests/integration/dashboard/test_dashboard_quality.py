"""The dashboard's data-quality page in headless Chromium: latest runs per suite, pass or fail, the
failing expectations with sample values, links to the Data Docs pages."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.fixtures.browser import screenshot_path
from tests.fixtures.pipeline import run_until_idle
from txnmon.adapters.mongo import MongoStore
from txnmon.jobs import replay
from txnmon.jobs.quality import run_quality_checks
from txnmon.settings import SAMPLE_CSV

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_quality_page_lists_runs_failures_with_samples_and_report_links(settings_factory, dashboard_factory, browser,
                                                                        tmp_path):
    s = settings_factory(reports_dir=tmp_path / "reports", reports_url="http://reports.example/txnmon/quality/")
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    replay.replay_csv(s, SAMPLE_CSV)
    run_until_idle(s)
    store = MongoStore(s)
    clean = run_quality_checks(store, start, dt.datetime.now(dt.UTC), s.reports_dir, settings=s)
    base = store.find_one("transactions", {"_id": "5"})
    store.insert_missing("transactions", [{**base, "_id": "bad-1", "transaction_id": "bad-1", "amount": -10.0,
                                           "processed_time": dt.datetime.now(dt.UTC)}])
    dirty = run_quality_checks(store, start - dt.timedelta(seconds=1),  # another interval: another summary
                               dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1), s.reports_dir,
                               settings=s, fail_on_critical=False)
    url = dashboard_factory(s)
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(url + "quality")
    page.wait_for_selector("table.txnmon-suite-transactions", timeout=60_000)
    transactions = page.inner_text("table.txnmon-suite-transactions")
    rows = transactions.splitlines()
    assert "FAIL" in transactions and "PASS" in transactions  # the dirty run first, then the clean one
    assert transactions.index("FAIL") < transactions.index("PASS"), rows
    assert "critical: expect_column_values_to_be_between(amount) · 1 unexpected · e.g. -10.0" in transactions
    for suite in ("alerts", "pipeline"):  # rendered after the transactions table: wait, do not peek
        page.wait_for_selector(f"table.txnmon-suite-{suite}", timeout=30_000)
    links = page.eval_on_selector_all("table.txnmon-suite-transactions a", "els => els.map(e => e.href)")
    newest = next(x for x in dirty if x["suite"] == "transactions")["report_path"]
    relative = Path(newest).relative_to(s.reports_dir / "quality").as_posix()
    assert links[0] == f"http://reports.example/txnmon/quality/{relative}"
    assert len(links) == 2 and all(x["report_path"] for x in clean)
    page.screenshot(path=screenshot_path("quality-page.png"), full_page=True)
    page.close()
