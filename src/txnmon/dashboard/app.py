"""txnmon live dashboard: `make dashboard` (Streamlit on http://127.0.0.1:8501).

Pages by audience, chosen in the sidebar (or `?page=Fraud` in the URL):

- Business: revenue, products, payment mix, the city heatmap, payment health (failure rate per
  method, gateway-outage alerts), stock alerts, carts (funnel, abandonment rates), reviews (rating and
  sentiment per product, sentiment drops) and trends (trending products and cities, new regions)
  (src/txnmon/dashboard/business.py, events_views.py);
- Fraud: alert rate, the alerts feed, rule quality, shadow rules, triage (src/txnmon/dashboard/fraud.py);
  Cases, Lists and Audit are the analyst's desk (src/txnmon/dashboard/desk.py);
- Operations: consumer lag, throughput, the DLQ, KPI and signal freshness, open stock alerts with their
  projection, recent interventions (src/txnmon/dashboard/operations.py).

This file is the script Streamlit runs (its pages/ folder stays next to it): the page config, the
sidebar and the choice of page. Tables and captions are escaped text (src/txnmon/dashboard/widgets.py).

The Business and Fraud pages read only the kpi_* rollups, the alerts, ops_alerts and trends
collections (and cart_outcomes, for the cart funnel), refreshing every few seconds. It needs nothing
outside this machine: charts are drawn by the bundled Vega-Lite, the map's outlines are vendored
TopoJSON (src/txnmon/dashboard/geomap.py).
"""

from __future__ import annotations

import datetime as dt
import functools

import streamlit as st

from txnmon.adapters.mongo import MongoStore
from txnmon.dashboard import business, desk, fraud, operations, queries
from txnmon.dashboard.widgets import md_code
from txnmon.errors import ConfigError, TxnmonError
from txnmon.settings import get_settings

st.set_page_config(page_title="txnmon · live transactions", page_icon="📈", layout="wide")


@functools.cache
def _db():  # one client per dashboard process
    return MongoStore(get_settings())


def sidebar() -> tuple[dt.timedelta | None, list[str], int]:
    st.sidebar.header("View")
    label = st.sidebar.selectbox("Time range", list(queries.RANGES), index=0)
    refresh = st.sidebar.slider("Refresh every (seconds)", 2, 60, 5)
    try:
        rules = queries.known_rules(_db())
    except TxnmonError:
        rules = []
    chosen = st.sidebar.multiselect("Alert rules", rules, default=[], placeholder="all rules")
    st.sidebar.caption("Numbers come from the kpi_* rollups (kpi_rollups DAG, or `txnmon rollups`).")
    return queries.RANGES[label], chosen, refresh


VIEWS = ["Business", "Fraud", "Operations", "Cases", "Lists", "Audit"]


def main() -> None:
    st.title("txnmon · live transactions")
    try:
        get_settings()
    except ConfigError as exc:
        st.error(md_code(exc))
        return
    asked = str(st.query_params.get("page", "")).capitalize()
    index = VIEWS.index("Cases") if st.query_params.get("case") else VIEWS.index(asked) if asked in VIEWS else 0
    view = st.sidebar.radio("Page", VIEWS, index=index, horizontal=True)
    if view in ("Cases", "Lists", "Audit"):
        settings = get_settings()
        try:
            desk.desk(_db(), view, str(settings.dashboard_analyst) if settings.dashboard_triage else None)
        except TxnmonError as exc:
            st.error(f"MongoDB is not reachable ({md_code(str(exc).split(',')[0])}). Is the stack up? Try `make up`.")
        return
    if view == "Operations":
        refresh = st.sidebar.slider("Refresh every (seconds)", 2, 60, 10)
        st.fragment(run_every=refresh)(operations.operations_page)(_db())
        return
    span, rules, refresh = sidebar()
    if view == "Business":
        st.sidebar.checkbox("World map", key="map_world", help="fit the map to every city, not the main market")
    page = business.business_page if view == "Business" else fraud.fraud_page
    st.fragment(run_every=refresh)(page)(_db(), span, rules)
    if view == "Fraud":
        try:
            fraud.triage_form(_db(), rules)
        except TxnmonError:
            pass  # the page above already says MongoDB is unreachable


main()
