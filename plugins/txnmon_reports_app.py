"""A small web app serving the quality reports (Data Docs HTML), mounted into Airflow's API
server by plugins/txnmon_links.py so the Airflow UI can link to "the latest quality report".
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse

from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import QUALITY_REPORTS
from txnmon.settings import get_settings

# Reports are built from transaction data and served from Airflow's origin, so a value that slipped
# through as markup must not run with the viewer's Airflow rights. The sandbox (scripts allowed, but
# not the same origin) gives a page an opaque origin: no Airflow cookie, storage or API with the
# viewer's session. Scripts load only from here or as inline blocks named by hash; no event-handler
# attribute runs (except GX's own buttons, by hash), nothing connects anywhere, no form posts.
_POLICY = ("default-src 'none'; script-src 'self'{scripts}; style-src 'self' 'unsafe-inline'; "
           "img-src 'self' data:; font-src 'self' data:; connect-src 'none'; form-action 'none'; "
           "base-uri 'none'; frame-ancestors 'self'; sandbox allow-scripts")
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
# the onclick handlers GX's Data Docs templates write (filter buttons); nothing from the data
_GX_HANDLER = re.compile(r'\son\w+="((?:showAllValidations|hideSucceededValidations)\(\)'
                         r"|clearTableFilters\('[\w-]+'\))\"")


# what the unguarded static route serves: no HTML, no JSON (a page or data could sit under static/)
STATIC_SUFFIXES = frozenset({".js", ".css", ".woff", ".woff2", ".ttf", ".otf", ".eot", ".png", ".gif", ".ico",
                             ".jpg", ".svg"})


def _sha256(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def content_security_policy(page: str = "") -> str:
    """The policy for one served page: its inline script blocks and GX's own button handlers by hash."""
    scripts = sorted({_sha256(s) for s in _INLINE_SCRIPT.findall(page)})
    handlers = sorted({_sha256(h) for h in _GX_HANDLER.findall(page)})
    allowed = scripts + (["'unsafe-hashes'", *handlers] if handlers else [])
    return _POLICY.format(scripts="".join(" " + a for a in allowed))


def latest_report(store: MongoStore) -> dict | None:
    rows = store.find(QUALITY_REPORTS, {"report_path": {"$ne": None}}, sort=[("run_at", -1)], limit=1)
    return rows[0] if rows else None


def create_app(dependencies: Sequence[Any] = ()) -> FastAPI:
    """The reports app. `dependencies` guard every route, the report files included, except the
    site's static assets (vendored libraries, no data): the Airflow plugin passes Airflow's own
    authentication (Airflow does not authenticate plugin apps itself)."""
    settings = get_settings()
    quality_dir = Path(settings.reports_dir) / "quality"
    quality_dir.mkdir(parents=True, exist_ok=True)
    app = FastAPI(title="txnmon reports")
    guarded = list(dependencies)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", content_security_policy())
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/quality/static/{name:path}", include_in_schema=False)
    def static_asset(name: str) -> FileResponse:
        # Unguarded: a sandboxed page has an opaque origin, so its loads of scripts, styles and fonts
        # carry no Airflow cookie. These are the vendored libraries and GX's styles, never data.
        root = (quality_dir / "static").resolve()
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not path.is_file() or path.suffix.lower() not in STATIC_SUFFIXES:
            raise HTTPException(404, "no such asset")
        # fonts are CORS loads, and the sandboxed page's origin is "null"
        return FileResponse(path, headers={"Access-Control-Allow-Origin": "*"})

    @app.get("/quality/latest", include_in_schema=False, dependencies=guarded)
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

    @app.get("/", response_class=HTMLResponse, include_in_schema=False, dependencies=guarded)
    def index() -> str:
        return ('<h1>txnmon reports</h1><ul><li><a href="quality/latest">latest data-quality report</a></li>'
                '<li><a href="quality/index.html">all data-quality runs (Data Docs)</a></li></ul>')

    @app.get("/quality/{name:path}", include_in_schema=False, dependencies=guarded)
    def report_file(name: str) -> FileResponse:
        # a route, not a StaticFiles mount: mounted apps skip the app's dependencies (the auth)
        root = quality_dir.resolve()
        path = (root / name).resolve()
        if path.is_dir():
            path = path / "index.html"
        if not path.is_relative_to(root) or not path.is_file():
            raise HTTPException(404, "no such report")
        if path.suffix.lower() in {".html", ".htm"}:
            policy = content_security_policy(path.read_text(encoding="utf-8", errors="replace"))
            return FileResponse(path, headers={"Content-Security-Policy": policy})
        return FileResponse(path)

    return app
