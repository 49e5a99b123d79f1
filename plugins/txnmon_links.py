"""Airflow UI links to the txnmon dashboard and the latest data-quality report.

The reports are served by a small FastAPI app mounted under /txnmon in Airflow's API server.
DASHBOARD_URL overrides where the dashboard link points (default http://127.0.0.1:8501).
"""

import os

from airflow.plugins_manager import AirflowPlugin

from include.reports_app import create_app

DASHBOARD_URL = os.environ.get("DASHBOARD_URL", "http://127.0.0.1:8501")


class TxnmonLinksPlugin(AirflowPlugin):
    name = "txnmon_links"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/txnmon", "name": "txnmon reports"}]
    external_views = [
        {"name": "txnmon dashboard", "href": DASHBOARD_URL, "destination": "nav", "category": "browse"},
        {"name": "Latest quality report", "href": "/txnmon/quality/latest", "destination": "nav",
         "category": "browse"},
        {"name": "All quality reports", "href": "/txnmon/quality/index.html", "destination": "nav",
         "category": "browse"},
    ]
