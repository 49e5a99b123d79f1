"""A small web app serving the quality reports (Data Docs HTML), mounted into Airflow's API
server by plugins/txnmon_links.py so the Airflow UI can link to "the latest quality report".
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from include import mongo_io
from include.config import get_settings


def latest_report(db: object) -> dict | None:
    rows = mongo_io.find(db, mongo_io.QUALITY_REPORTS, {"report_path": {"$ne": None}}, sort=[("run_at", -1)],
                         limit=1)
    return rows[0] if rows else None


def create_app() -> FastAPI:
    settings = get_settings()
    quality_dir = Path(settings.reports_dir) / "quality"
    quality_dir.mkdir(parents=True, exist_ok=True)
    app = FastAPI(title="txnmon reports")

    @app.get("/quality/latest", include_in_schema=False)
    def latest() -> RedirectResponse:
        report = latest_report(mongo_io.get_db(settings))
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

    app.mount("/quality", StaticFiles(directory=quality_dir, html=True), name="quality")
    return app
