"""The Operations page: health, consumer lag, throughput, the DLQ, KPI and signal freshness, open stock alerts
with their projection and recent interventions."""

from __future__ import annotations

import datetime as dt

import altair as alt
import pandas as pd
import streamlit as st

from txnmon.adapters import kafka
from txnmon.dashboard import events_views, queries
from txnmon.dashboard.widgets import md_code, show_caption, show_table
from txnmon.errors import TxnmonError
from txnmon.jobs import status
from txnmon.settings import get_settings


@st.cache_data(ttl=10, show_spinner=False)
def dlq_count() -> int | None:
    settings = get_settings()
    try:
        return sum(kafka.end_offsets(settings, settings.topic_dlq).values())
    except (TxnmonError, kafka.KafkaError):
        return None


@st.cache_data(ttl=10, show_spinner=False)
def _status_report() -> dict:
    return status.collect(get_settings())


def operations_page(db) -> None:
    report = _status_report()
    verdict = report.get("verdict", {})
    kafka_part, mongo_part = report.get("kafka", {}), report.get("mongo", {})
    dlq = dlq_count()
    cols = st.columns(4)
    cols[0].metric("Health", "healthy" if report.get("healthy") else "attention")
    cols[1].metric("Consumer lag", "n/a" if "lag" not in kafka_part else f"{kafka_part['lag']:,}")
    cols[2].metric("Stored per second", "n/a" if "throughput_tx_per_s" not in mongo_part
                   else f"{mongo_part['throughput_tx_per_s']:,}", help="transactions stored in the last minute / 60")
    cols[3].metric("Rejected (DLQ)", "n/a" if dlq is None else f"{dlq:,}")
    problems = verdict.get("problems") or []
    if problems:
        show_caption("Attention: " + "; ".join(f"{p['check']}: {p['message']}" for p in problems))
    if kafka_part.get("error") or mongo_part.get("error"):
        st.error(f"Kafka: {md_code(kafka_part.get('error', 'ok'))} · MongoDB: {md_code(mongo_part.get('error', 'ok'))}")
    left, right = st.columns(2)
    with left:
        st.subheader("Lag per partition")
        lag = kafka_part.get("lag_by_topic") or {}
        rows = [{"topic": t, "partition": int(p), "lag": n} for t, parts in lag.items() for p, n in parts.items()]
        if rows:
            show_table(pd.DataFrame(rows).set_index("topic"), "lag")
        else:
            st.info("No consumer-group offsets yet.")
        st.subheader("Throughput (event time)")
        try:
            w = queries.data_window(db, dt.timedelta(hours=6))
        except TxnmonError:
            w = None
        frame = queries.revenue_trend(db, w) if w is not None else pd.DataFrame()
        if frame.empty:
            st.info("No transactions rolled up yet.")
        else:
            st.altair_chart(alt.Chart(frame).mark_area(opacity=0.6).encode(
                x=alt.X("minute:T", title="event time (UTC)"), y=alt.Y("transactions:Q", title="transactions/min")
            ).properties(height=200), width="stretch")
    with right:
        kpi_freshness(report.get("kpis") or {}, queries.signals_state(db))
        st.subheader("Rejected events by reason")
        frame = queries.rejected_by_reason(db)
        if frame.empty:
            st.info("Nothing rejected.")
        else:
            show_table(frame.set_index("reason"), "rejected")
            st.caption("`txnmon dlq list` shows them; `txnmon dlq redrive --reason R` sends them again after a fix.")
    events_views.stock_alerts_view(db)
    events_views.interventions_view(db)


def kpi_freshness(kpis: dict, signals_state: dict | None) -> None:
    st.subheader("KPI freshness")
    if kpis.get("error"):
        st.error(md_code(kpis["error"]))
        return
    rows = [{"collection": name, "as_of": (c or {}).get("as_of"), "last_success": (c or {}).get("last_success")}
            for name, c in (kpis.get("collections") or {}).items()]
    if rows:
        frame = pd.DataFrame(rows)
        for col in ("as_of", "last_success"):
            frame[col] = pd.to_datetime(frame[col], utc=True).dt.strftime("%Y-%m-%d %H:%M:%S").fillna("never")
        show_table(frame.set_index("collection"), "freshness")
    show_caption(f"Stored batches waiting for the next rollup run: {kpis.get('pending_batches', 'n/a')}")
    closed = (signals_state or {}).get("closed_until")
    show_caption(f"Business signals decided up to {closed:%Y-%m-%d %H:%M} UTC (event time)" if closed
                 else "Business signals: not run yet (`txnmon signals`, or the kpi_rollups DAG)")
