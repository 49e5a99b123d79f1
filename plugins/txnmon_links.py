"""Airflow UI links to the txnmon dashboard and the latest data-quality report.

The reports are served by a small FastAPI app mounted under /txnmon in Airflow's API server, behind
Airflow's authentication (a signed-in Airflow user; plugin apps are not authenticated otherwise).
DASHBOARD_URL overrides where the dashboard link points (default http://127.0.0.1:8501).
"""

import os

from airflow.api_fastapi.core_api.security import requires_authenticated
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends

from plugins.txnmon_reports_app import create_app

DASHBOARD_URL = os.environ.get("DASHBOARD_URL", "http://127.0.0.1:8501")


class TxnmonLinksPlugin(AirflowPlugin):
    name = "txnmon_links"
    # Airflow does not authenticate plugin apps: every route requires a signed-in Airflow user
    fastapi_apps = [{"app": create_app([Depends(requires_authenticated())]), "url_prefix": "/txnmon",
                     "name": "txnmon reports"}]
    # links (no url_route), not embedded views: a report is a sandboxed page (plugins/txnmon_reports_app.py),
    # and inside Airflow's iframe its own navigation would carry no session cookie (SameSite=Lax)
    external_views = [
        {"name": "txnmon dashboard", "href": DASHBOARD_URL, "destination": "nav", "category": "browse"},
        {"name": "Latest quality report", "href": "/txnmon/quality/latest", "destination": "nav",
         "category": "browse"},
        {"name": "All quality reports", "href": "/txnmon/quality/index.html", "destination": "nav",
         "category": "browse"},
    ]
