"""Data Docs render offline: no page loads anything from the network, and in headless Chromium with
every non-file request refused the index lists the validations, styled, and a page shows its results."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.fixtures.browser import screenshot_path
from tests.fixtures.pipeline import run_until_idle
from txnmon.adapters.mongo import MongoStore
from txnmon.core.datadocs import remote_loads
from txnmon.jobs import replay
from txnmon.jobs.quality import run_quality_checks
from txnmon.settings import SAMPLE_CSV

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_data_docs_load_nothing_from_the_network_and_render_styled(isolated_settings, tmp_path, browser):
    s = isolated_settings
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    replay.replay_csv(s, SAMPLE_CSV)
    run_until_idle(s)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    summaries = run_quality_checks(MongoStore(s), start, end, tmp_path, settings=s)
    site = tmp_path / "quality"
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 4  # the index, three suites' expectation pages and validation results
    assert {str(p): remote_loads(p.read_text()) for p in pages} == {str(p): [] for p in pages}

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    refused: list[str] = []
    failed: list[str] = []

    def only_files(route):
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_files)
    page.on("requestfailed", lambda r: failed.append(r.url) if r.url.startswith("file:") else None)
    page.on("console", lambda m: failed.append(m.text) if m.type == "error" else None)
    page.goto((site / "index.html").as_uri())
    page.wait_for_load_state("load")
    page.wait_for_selector("text=Showing 1 to 3 of 3 rows", timeout=20_000)  # bootstrap-table ran
    body = page.inner_text("body")
    for suite in ("transactions", "alerts", "pipeline"):
        assert suite in body, suite
    assert page.evaluate("typeof jQuery") == "function" and page.evaluate("typeof $.fn.bootstrapTable") == "function"
    font = page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "apple-system" in font or "Segoe UI" in font, font  # bootstrap's font stack: its CSS applied
    assert refused == [] and failed == []

    pipeline = next(x for x in summaries if x["suite"] == "pipeline")["report_path"]
    page.goto(Path(pipeline).as_uri())
    page.wait_for_selector("text=unaccounted_messages", timeout=20_000)
    assert "newest_event_age_s" in page.inner_text("body")
    assert refused == [] and failed == []
    page.screenshot(path=screenshot_path("data-docs-offline.png"))
    page.close()
