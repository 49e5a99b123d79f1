"""The reports app's security headers: a report page cannot run data as script with Airflow's rights."""

from __future__ import annotations

import base64
import hashlib

from fastapi.testclient import TestClient

from plugins.txnmon_reports_app import content_security_policy, create_app
from txnmon.settings import load_settings

GX_PAGE = """<html><head><script src="static/vendor/jquery/dist/jquery.min.js"></script>
<script>$('#t').bootstrapTable({data: []})</script></head><body>
<button onclick="clearTableFilters('section-1-table')">clear</button>
<div>&lt;img src=x onerror=alert(1)&gt;</div><img src=x onerror="alert(2)"></body></html>"""


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def _app(tmp_path, monkeypatch) -> TestClient:
    settings = load_settings(reports_dir=str(tmp_path))
    monkeypatch.setattr("plugins.txnmon_reports_app.get_settings", lambda: settings)
    (tmp_path / "quality").mkdir()
    (tmp_path / "quality" / "index.html").write_text(GX_PAGE)
    (tmp_path / "quality" / "app.js").write_text("1")
    return TestClient(create_app())


def _directives(policy: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in policy.split(";")) if d}


def test_every_response_carries_a_sandboxing_policy_and_nosniff(tmp_path, monkeypatch):
    client = _app(tmp_path, monkeypatch)
    for path in ("/", "/quality/index.html", "/quality/", "/quality/app.js", "/quality/missing.html"):
        response = client.get(path)
        policy = _directives(response.headers["content-security-policy"])
        assert policy["sandbox"] == ["allow-scripts"], path  # opaque origin: no Airflow cookie or API
        assert policy["default-src"] == ["'none'"] and policy["connect-src"] == ["'none'"], path
        assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"], path
        assert response.headers["x-content-type-options"] == "nosniff", path


def test_a_report_page_allows_its_own_inline_script_and_gx_buttons_by_hash_only(tmp_path, monkeypatch):
    policy = _directives(_app(tmp_path, monkeypatch).get("/quality/index.html").headers["content-security-policy"])
    scripts = policy["script-src"]
    assert _hash("$('#t').bootstrapTable({data: []})") in scripts
    assert _hash("clearTableFilters('section-1-table')") in scripts and "'unsafe-hashes'" in scripts
    assert _hash("alert(2)") not in scripts  # an event handler from data never runs


def test_a_page_without_gx_buttons_allows_no_event_handler():
    scripts = _directives(content_security_policy('<img src=x onerror="alert(1)">'))["script-src"]
    assert scripts == ["'self'"]


def test_only_the_static_assets_are_served_to_a_sandboxed_page_without_a_session(tmp_path, monkeypatch):
    # a sandboxed page's loads carry no Airflow cookie: the vendored assets are open, data stays guarded
    from fastapi import Depends, HTTPException

    def refuse() -> None:
        raise HTTPException(401, "sign in")

    settings = load_settings(reports_dir=str(tmp_path))
    monkeypatch.setattr("plugins.txnmon_reports_app.get_settings", lambda: settings)
    static = tmp_path / "quality" / "static" / "vendor"
    static.mkdir(parents=True)
    (static / "lib.js").write_text("1")
    (static / "page.html").write_text("<html>")
    (tmp_path / "quality" / "index.html").write_text(GX_PAGE)
    client = TestClient(create_app([Depends(refuse)]))
    asset = client.get("/quality/static/vendor/lib.js")
    assert asset.status_code == 200 and asset.headers["access-control-allow-origin"] == "*"
    assert client.get("/quality/static/vendor/page.html").status_code == 404
    assert client.get("/quality/static/%2e%2e/index.html").status_code == 404
    for path in ("/", "/quality/index.html", "/quality/", "/quality/latest"):
        assert client.get(path).status_code == 401, path
