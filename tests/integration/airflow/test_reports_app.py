"""The reports app behind the Airflow UI's "Latest quality report" link, and the plugin that mounts it."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.airflow import AIRFLOW, ROOT, env_for_home
from txnmon.adapters.mongo import MongoStore

pytestmark = pytest.mark.integration


def test_latest_report_redirects_to_the_newest_data_docs_page(settings_factory, tmp_path, monkeypatch):
    s = settings_factory(reports_dir=str(tmp_path))
    page = tmp_path / "quality" / "validations" / "transactions" / "run2.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html>newest report</html>")
    (tmp_path / "quality" / "index.html").write_text("<html>index</html>")
    db = MongoStore(s)
    for i, path in enumerate(["/elsewhere/old.html", str(page)]):
        db.replace_document("quality_reports", {"_id": f"r{i}", "suite": "transactions",
                                                          "run_at": dt.datetime(2025, 10, 1, i, tzinfo=dt.UTC),
                                                          "report_path": path})
    monkeypatch.setattr("plugins.txnmon_reports_app.get_settings", lambda: s)
    from plugins.txnmon_reports_app import create_app

    client = TestClient(create_app())
    response = client.get("/quality/latest")
    assert response.status_code == 200 and "newest report" in response.text
    assert client.get("/quality/index.html").text == "<html>index</html>"
    assert "latest data-quality report" in client.get("/").text


def test_no_report_yet_is_a_clear_404(settings_factory, tmp_path, monkeypatch):
    s = settings_factory(reports_dir=str(tmp_path))
    monkeypatch.setattr("plugins.txnmon_reports_app.get_settings", lambda: s)
    from plugins.txnmon_reports_app import create_app

    response = TestClient(create_app()).get("/quality/latest")
    assert response.status_code == 404 and "run the data_quality DAG" in response.text


def test_airflow_loads_the_links_plugin(airflow_home):
    result = subprocess.run([AIRFLOW, "plugins", "-o", "json"], env=env_for_home(airflow_home), capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    plugins = json.loads(result.stdout[result.stdout.index("["):])
    links = next(p for p in plugins if p["name"] == "txnmon_links")
    names = {v["name"] for v in links["external_views"]}
    assert names == {"txnmon dashboard", "Latest quality report", "All quality reports"}
    assert links["fastapi_apps"][0]["url_prefix"] == "/txnmon"


def test_the_plugin_serves_reports_only_to_signed_in_airflow_users(settings_factory, tmp_path, monkeypatch):
    s = settings_factory(reports_dir=str(tmp_path))
    (tmp_path / "quality").mkdir()
    (tmp_path / "quality" / "index.html").write_text("<html>index</html>")
    monkeypatch.setattr("plugins.txnmon_reports_app.get_settings", lambda: s)
    from airflow.api_fastapi.core_api.security import requires_authenticated
    from fastapi import Depends

    from plugins.txnmon_reports_app import create_app

    guarded = TestClient(create_app([Depends(requires_authenticated())]))
    for path in ("/", "/quality/latest", "/quality/index.html", "/quality/"):
        assert guarded.get(path).status_code == 401, path
    open_app = TestClient(create_app())
    assert open_app.get("/quality/index.html").text == "<html>index</html>"
    assert open_app.get("/quality/../../etc/hostname").status_code == 404
