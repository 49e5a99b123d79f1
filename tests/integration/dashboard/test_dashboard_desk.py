"""The analyst's desk in headless Chromium: work a case end to end (inbox, case page with timeline
and explanations, a note, closed as fraud) against the real stack; screenshots into test-artifacts/
(docs/img with UPDATE_DOCS_IMAGES=1)."""

from __future__ import annotations

import datetime as dt
import urllib.parse

import pytest

from tests.fixtures.browser import screenshot_path
from tests.fixtures.pipeline import T0, produce, run_until_idle, tx_row
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import ALERT_DISPOSITIONS, AUDIT_LOG, CASES, LIST_ENTRIES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_an_analyst_works_a_case_end_to_end(settings_factory, dashboard_factory, browser):
    s = settings_factory(dashboard_triage=True, dashboard_analyst="ana")
    rows = [tx_row(f"W{i}", "U7", T0 + dt.timedelta(minutes=i), 900.0, "Mumbai") for i in range(5)]
    rows += [tx_row("W5", "U7", T0 + dt.timedelta(minutes=6), 75_000.0, "London"),
             tx_row("Q1", "U8", T0, 60_000.0, "Pune")]
    produce(s, rows)
    run_until_idle(s)
    db = MongoStore(s)
    case_id = "case:U7:W3:velocity"
    case = db.find_one(CASES, {"_id": case_id})
    assert case is not None and len(case["alert_ids"]) >= 3

    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(dashboard_factory(s))
    page.get_by_text("Cases", exact=True).click()
    page.wait_for_selector("table.txnmon-inbox", timeout=60_000)
    inbox = page.inner_text("table.txnmon-inbox")
    assert case_id in inbox and "case:U8:Q1:high_amount" in inbox
    page.screenshot(path=screenshot_path("case-inbox.png"), full_page=True)

    page.get_by_label("Case", exact=True).click()
    page.get_by_role("option", name=case_id).click()
    page.get_by_role("button", name="Open case").click()
    page.wait_for_selector("table.txnmon-timeline", timeout=30_000)
    timeline = page.inner_text("table.txnmon-timeline")
    assert all(f"W{i}" in timeline for i in range(6)) and "London" in timeline
    explained = page.inner_text("table.txnmon-case-alerts")
    assert "W3:velocity" in explained and "counted: W0, W1, W2" in explained
    page.get_by_label("Note").fill("customer called: card stolen on the 30th")
    page.get_by_role("button", name="Add note").click()
    page.wait_for_selector("text=card stolen on the 30th", timeout=30_000)
    page.get_by_role("button", name="Back to the inbox").scroll_into_view_if_needed()
    page.screenshot(path=screenshot_path("case-page.png"), full_page=True)

    page.get_by_text("fraud confirmed", exact=True).click()
    page.get_by_role("button", name="Close case").click()
    page.wait_for_selector("text=Closed as fraud_confirmed by ana", timeout=30_000)
    page.screenshot(path=screenshot_path("case-closed.png"), full_page=True)
    page.close()

    closed = db.find_one(CASES, {"_id": case_id})
    assert (closed["status"], closed["resolution"], closed["closed_by"]) == ("closed", "fraud_confirmed", "ana")
    assert [n["text"] for n in closed["notes"]] == ["customer called: card stolen on the 30th"]
    marks = {m["_id"]: m["disposition"] for m in db.find(ALERT_DISPOSITIONS)}
    assert marks == {a: "true_positive" for a in closed["alert_ids"]}
    assert sorted(e["action"] for e in db.find(AUDIT_LOG, {"target": case_id})) == ["case.close", "case.note"]


def test_an_analyst_trusts_a_user_for_one_rule_from_the_dashboard(settings_factory, dashboard_factory, browser):
    s = settings_factory(dashboard_triage=True, dashboard_analyst="ana")
    db = MongoStore(s)
    db.ensure_indexes()
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    page.goto(dashboard_factory(s))
    page.get_by_text("Lists", exact=True).click()
    page.wait_for_selector("text=No list entries yet.", timeout=60_000)
    page.get_by_label("List", exact=True).click()
    page.get_by_role("option", name="trusted_users").click()
    page.get_by_label("Value (user id or location)").fill("U7")
    page.get_by_label("Rule to silence (trusted_users only)").click()
    page.get_by_role("option", name="velocity", exact=True).click()
    page.get_by_label("Expires in days (0: never; trusted_users at most 180)").fill("200")
    page.get_by_label("Reason / justification").fill("payroll agent, verified by phone")
    page.get_by_role("button", name="Add entry").click()
    page.wait_for_selector("text=at most 180 days", timeout=30_000)  # refused, nothing stored
    assert db.count(LIST_ENTRIES) == 0
    page.get_by_label("Expires in days (0: never; trusted_users at most 180)").fill("90")
    page.get_by_label("Reason / justification").fill("payroll agent, verified by phone")
    page.get_by_role("button", name="Add entry").click()
    page.wait_for_selector("table.txnmon-lists", timeout=30_000)
    assert "payroll agent, verified by phone" in page.inner_text("table.txnmon-lists")
    page.screenshot(path=screenshot_path("lists.png"), full_page=True)
    (entry,) = db.find(LIST_ENTRIES)
    assert (entry["_id"], entry["added_by"], entry["rule"]) == ("trusted_users:u7:velocity", "ana", "velocity")
    page.get_by_text("Audit", exact=True).click()
    page.wait_for_selector("table.txnmon-audit", timeout=30_000)
    assert "list.add" in page.inner_text("table.txnmon-audit")
    page.close()
    assert [e["action"] for e in db.find(AUDIT_LOG)] == ["list.add"]


def test_hostile_case_ids_and_case_parameters_show_as_text(settings_factory, dashboard_factory, browser):
    # Markdown in a case id (from the transaction and user ids) or in the ?case= parameter draws no
    # link and loads no remote image: st.subheader and st.error get escaped text
    s = settings_factory()
    produce(s, [tx_row("![i](http://evil.example/i.png)", "[x](http://evil.example)", T0, 75_000.0)])
    run_until_idle(s)
    (case,) = MongoStore(s).find(CASES)
    assert "![i](http://evil.example/i.png)" in case["_id"]
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    remote: list[str] = []
    page.route("http://evil.example/**", lambda route: (remote.append(route.request.url), route.abort()))
    url = dashboard_factory(s)
    page.goto(url + "?case=" + urllib.parse.quote(case["_id"]))
    page.wait_for_selector("table.txnmon-timeline", timeout=60_000)
    page.wait_for_selector(f"text=Case {case['_id']}", timeout=30_000)
    assert page.query_selector_all("a[href*='evil.example'], img[src*='evil.example']") == []
    page.goto(url + "?case=" + urllib.parse.quote("<b>b</b>[x](http://evil.example)![i](http://evil.example/i.png)"))
    page.wait_for_selector("text=no case", timeout=60_000)
    assert "[x](http://evil.example)![i](http://evil.example/i.png)" in page.inner_text('[data-testid="stAlert"]')
    hosts = page.eval_on_selector_all("a[href], img[src]", "els => els.map(e => new URL(e.href || e.src).hostname)")
    assert "evil.example" not in hosts, hosts
    assert page.query_selector('[data-testid="stAlert"] b') is None
    page.close()
    assert remote == []
