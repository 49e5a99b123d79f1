"""`make airflow`'s Airflow (`bin/airflow standalone`, started once for this module with a PATH that has
no virtualenv on it): the REST API triggers `replay_transactions` with params, and the trigger form
in headless Chromium starts a run."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.fixtures.airflow import AirflowServer
from tests.fixtures.browser import screenshot_path
from tests.fixtures.pipeline import read_topic
from txnmon.adapters import kafka
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

# the first test also pays for the module's `airflow standalone` start-up (up to 240 s), under pytest-timeout
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def test_rest_api_triggers_replay_with_params_and_the_rows_reach_the_topic(airflow_server: AirflowServer):
    af, s = airflow_server, airflow_server.settings
    data = af.data_dir / "rest.csv"
    rows = generate(GeneratorSpec(rows=400, users=40, seed=19))
    write_csv(rows, data)
    before = sum(kafka.end_offsets(s, s.topic_raw).values())
    af.api("PATCH", "/api/v2/dags/replay_transactions", {"is_paused": False})
    run_id = f"rest-{uuid.uuid4().hex[:8]}"
    run = af.api("POST", "/api/v2/dags/replay_transactions/dagRuns",
                 {"dag_run_id": run_id, "logical_date": None, "conf": {"file": str(data), "speedup": 0, "limit": 250}})
    assert run["conf"] == {"file": str(data), "speedup": 0, "limit": 250}
    done = af.wait_for_run("replay_transactions", run_id)
    assert done["state"] == "success", af.log.read_text()[-4000:]
    assert sum(kafka.end_offsets(s, s.topic_raw).values()) - before == 250  # `limit` was honoured
    ids = [str(t) for t in rows["transaction_id"]]
    records = [r for r in read_topic(s, s.topic_raw, before + 250) if json.loads(r.value)["transaction_id"] in ids]
    assert sorted(json.loads(r.value)["transaction_id"] for r in records) == sorted(ids[:250])
    assert all(r.key == json.loads(r.value)["user_id"].encode() for r in records)  # keyed by user


def test_trigger_form_in_the_browser_starts_a_run_with_the_typed_params(airflow_server: AirflowServer, browser):
    af, s = airflow_server, airflow_server.settings
    data = af.data_dir / "form.csv"
    rows = generate(GeneratorSpec(rows=120, users=12, seed=91))
    write_csv(rows, data)
    before = sum(kafka.end_offsets(s, s.topic_raw).values())
    run_id = f"form-{uuid.uuid4().hex[:8]}"
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    page.goto(af.url + "/dags/replay_transactions")
    page.get_by_role("button", name="Trigger Dag").click()
    page.wait_for_selector("text=Run Parameters", timeout=30_000)
    form = page.get_by_role("dialog")
    assert form.locator("#element_file").input_value() == "sample_transactions.csv"  # the DAG's default
    assert "event-time pacing" in form.inner_text()  # param descriptions shown
    form.locator("#element_file").fill(str(data))
    form.locator("input[name=element_speedup]").fill("0")
    form.locator("input[name=element_limit]").fill("77")
    page.screenshot(path=screenshot_path("airflow-trigger-form.png"))
    form.get_by_text("Advanced Options").click()
    form.locator("input[name=dagRunId]").fill(run_id)
    form.get_by_role("button", name="Trigger", exact=True).click()
    done = af.wait_for_run("replay_transactions", run_id)
    page.close()
    assert done["conf"]["file"] == str(data) and done["conf"]["speedup"] == 0 and done["conf"]["limit"] == 77
    assert done["state"] == "success", af.log.read_text()[-4000:]
    assert sum(kafka.end_offsets(s, s.topic_raw).values()) - before == 77
