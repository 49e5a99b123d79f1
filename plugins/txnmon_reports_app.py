"""A small web app serving the quality reports (Data Docs HTML), mounted into Airflow's API
server by plugins/txnmon_links.py so the Airflow UI can link to "the latest quality report".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import QUALITY_REPORTS
from txnmon.settings import get_settings


def latest_report(store: MongoStore) -> dict | None:
    rows = store.find(QUALITY_REPORTS, {"report_path": {"$ne": None}}, sort=[("run_at", -1)], limit=1)
    return rows[0] if rows else None


def create_app(dependencies: Sequence[Any] = ()) -> FastAPI:
    """The reports app. `dependencies` guard every route, the report files included: the Airflow
    plugin passes Airflow's own authentication (Airflow does not authenticate plugin apps itself)."""
    settings = get_settings()
    quality_dir = Path(settings.reports_dir) / "quality"
    quality_dir.mkdir(parents=True, exist_ok=True)
    app = FastAPI(title="txnmon reports", dependencies=list(dependencies))

    @app.get("/quality/latest", include_in_schema=False)
    def latest() -> RedirectResponse:
        report = latest_report(MongoStore(settings))
        if report is None:
            raise HTTPException(404, "no quality report yet: run the data_quality DAG")
        path = Path(report["report_path"])
        try:
            relative = path.resolve().relative_to(quality_dir.resolve())
        except ValueError:
            raise HTTPException(404, f"report {path} is outside {quality_dir}") from None
        return RedirectResponse(f"../quality/{relative.as_posix()}")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return ('<h1>txnmon reports</h1><ul><li><a href="quality/latest">latest data-quality report</a></li>'
                '<li><a href="quality/index.html">all data-quality runs (Data Docs)</a></li></ul>')

    @app.get("/quality/{name:path}", include_in_schema=False)
    def report_file(name: str) -> FileResponse:
        # a route, not a StaticFiles mount: mounted apps skip the app's dependencies (the auth)
        root = quality_dir.resolve()
        path = (root / name).resolve()
        if path.is_dir():
            path = path / "index.html"
        if not path.is_relative_to(root) or not path.is_file():
            raise HTTPException(404, "no such report")
        return FileResponse(path)

    return app
