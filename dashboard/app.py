"""txnmon live dashboard: `make dashboard` (Streamlit on http://127.0.0.1:8501).

The Live page reads only the kpi_* rollups and the alerts collection (plus the DLQ topic's size),
refreshing itself every few seconds; the Cases, Lists and Audit pages are the analyst's desk
(dashboard/desk.py). It needs nothing outside this machine: charts are drawn by the
bundled Vega-Lite and the city view uses the bundled coordinates table, no map tiles.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import time

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import desk, queries
from include.config import get_settings
from include.connectors import kafka
from include.connectors.mongo import MongoStore
from include.core.triage import CHOICES
from include.errors import ConfigError, TxnmonError
from include.jobs import triage

st.set_page_config(page_title="txnmon · live transactions", page_icon="📈", layout="wide")


@functools.cache
def _db():  # one client per dashboard process
    return MongoStore(get_settings())


@st.cache_data(ttl=10, show_spinner=False)
def dlq_count() -> int | None:
    settings = get_settings()
    try:
        return sum(kafka.end_offsets(settings, settings.topic_dlq).values())
    except (TxnmonError, kafka.KafkaError):
        return None


_TABLE_STYLE = ("<style>.txnmon-table{border-collapse:collapse;width:100%;font-size:0.9rem}"
                ".txnmon-table th,.txnmon-table td{border-bottom:1px solid #e6e6e6;padding:4px 8px;text-align:left}"
                ".txnmon-caption{color:#6b6b6b;font-size:0.85rem;margin:0 0 0.5rem}</style>")


def show_table(frame: pd.DataFrame, name: str) -> None:
    """A table whose cells are text, never Markdown or HTML: every value is HTML-escaped, so a
    location such as `[x](http://...)` or `<img src=...>` shows as those characters, no link."""
    body = frame.to_html(escape=True, border=0, classes=["txnmon-table", f"txnmon-{name}"])
    st.html(_TABLE_STYLE + body)


def show_caption(text: str) -> None:
    """A caption that may carry data: escaped text, not Markdown."""
    st.html(f'{_TABLE_STYLE}<p class="txnmon-caption">{html.escape(text)}</p>')


def money(x: float) -> str:
    return f"{x:,.0f}"


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


def headline(db, w: queries.Window) -> None:
    h = queries.headline(db, w)
    dlq = dlq_count()
    cols = st.columns(4)
    cols[0].metric("Revenue", money(h["revenue"]))
    cols[1].metric("Transactions", f"{h['transactions']:,}")
    cols[2].metric("Alert rate", f"{h['alert_rate']:.1%}", help=f"{h['alerts']:,} alerts")
    cols[3].metric("Rejected (DLQ)", "n/a" if dlq is None else f"{dlq:,}")


def trend(db, w: queries.Window) -> None:
    st.subheader("Revenue and transactions per minute")
    frame = queries.revenue_trend(db, w)
    if frame.empty:
        st.info("No transactions in this range.")
        return
    base = alt.Chart(frame).encode(x=alt.X("minute:T", title="event time (UTC)",
                                           axis=alt.Axis(format="%H:%M", labelOverlap=True)))
    revenue = base.mark_line(color="#1f77b4").encode(y=alt.Y("revenue:Q", title="revenue"))
    count = base.mark_line(color="#ff7f0e", strokeDash=[4, 2]).encode(y=alt.Y("transactions:Q", title="transactions"))
    st.altair_chart(alt.layer(revenue, count).resolve_scale(y="independent"), width="stretch")


def bars(title: str, frame: pd.DataFrame, key: str) -> None:
    st.subheader(title)
    if frame.empty:
        st.info("No data in this range.")
        return
    chart = alt.Chart(frame.head(15)).mark_bar().encode(
        x=alt.X("revenue:Q", title="revenue"), y=alt.Y(f"{key}:N", sort="-x", title=None),
        tooltip=[key, alt.Tooltip("revenue:Q", format=",.0f"), "transactions"])
    st.altair_chart(chart, width="stretch")


def city_view(db, w: queries.Window) -> None:
    st.subheader("Revenue by city")
    frame = queries.by_city(db, w)
    located = frame.dropna(subset=["lat", "lon"])
    if located.empty:
        st.info("No located transactions in this range.")
        return
    points = alt.Chart(located).mark_circle(opacity=0.7, color="#2ca02c").encode(
        longitude="lon:Q", latitude="lat:Q", size=alt.Size("revenue:Q", scale=alt.Scale(range=[40, 2000]), legend=None),
        tooltip=["location", alt.Tooltip("revenue:Q", format=",.0f"), "transactions"])
    labels = alt.Chart(located).mark_text(dy=-12, fontSize=11).encode(longitude="lon:Q", latitude="lat:Q",
                                                                      text="location")
    st.altair_chart((points + labels).project("mercator").properties(height=420), width="stretch")
    unknown = frame[frame["lat"].isna()]
    if not unknown.empty:
        show_caption(f"Not on the map (no coordinates): {', '.join(str(x) for x in unknown['location'])}")


def alerts(db, w: queries.Window, rules: list[str]) -> None:
    st.subheader("Alerts feed (newest first)")
    per_rule = queries.alerts_by_rule(db, w)
    if not per_rule.empty:
        show_caption(" · ".join(f"{r.rule}: {r.alerts:,}" for r in per_rule.itertuples()))
    feed = queries.alerts_feed(db, w, rules, limit=50)
    if feed.empty:
        st.info("No alerts in this range." if not rules else "No alerts for the chosen rules in this range.")
        return
    shown = feed[["event_time", "severity", "rule", "reason", "transaction_id", "user_id", "amount", "location"]].copy()
    shown["event_time"] = pd.to_datetime(shown["event_time"], utc=True).dt.strftime("%Y-%m-%d %H:%M")
    shown["amount"] = shown["amount"].map(money)
    show_table(shown.set_index("event_time"), "alerts")


def _share(p: float | None) -> str:
    return "n/a" if p is None or p != p else f"{p:.0%}"


def rule_quality(db) -> None:
    st.subheader("Rule quality (from analysts' dispositions)")
    rows = triage.rule_quality(db)
    if not rows:
        st.info("No alerts marked yet: mark one below or with `txnmon alerts mark`.")
    else:
        frame = pd.DataFrame(rows)
        frame["precision"] = frame["precision"].map(_share)
        show_table(frame.set_index("rule"), "rule-quality")
        by_severity = pd.DataFrame(triage.severity_quality(db))
        by_severity["false_share"] = by_severity["false_share"].map(_share)
        show_caption("By severity: false_share = marked false positive / marked.")
        show_table(by_severity.set_index("severity"), "severity-quality")
    labelled_quality(db)


def labelled_quality(db) -> None:
    """What `txnmon backtest` reports, from the labels of a replayed `txnmon generate` file."""
    report = triage.labelled_quality(db)
    if not report["patterns"] and not report["behaviours"]:
        return  # unlabelled data: nothing to show
    st.subheader("Detection on labelled data (replayed `txnmon generate` files)")
    left, right = st.columns(2)
    with left:
        if report["patterns"]:
            frame = pd.DataFrame(report["patterns"])
            frame["recall"] = frame["recall"].map(lambda r: f"{r:.1%}")
            show_table(frame.set_index("pattern"), "labelled-patterns")
    with right:
        if report["behaviours"]:
            frame = pd.DataFrame(report["behaviours"])
            frame["rate"] = frame["rate"].map(lambda r: f"{r:.2%}")
            show_table(frame.set_index("behaviour"), "labelled-behaviours")
            total = report["overall"][0]
            show_caption(f"False alerts on {total['false_alerts']:,} of {total['transactions']:,} clean "
                         f"transactions ({total['rate']:.2%}).")


def rejected_and_shadow(db, w: queries.Window) -> None:
    left, right = st.columns(2)
    with left:
        st.subheader("Rejected events by reason")
        frame = queries.rejected_by_reason(db)
        if frame.empty:
            st.info("Nothing rejected.")
        else:
            show_table(frame.set_index("reason"), "rejected")
            st.caption("`txnmon dlq list` shows them; `txnmon dlq redrive --reason R` sends them again after a fix.")
    with right:
        st.subheader("Shadow rules vs live alerts")
        frame = queries.shadow_vs_live(db, w)
        if frame.empty:
            st.info("No shadow-mode rule has hits in this range (`mode: shadow` in the rules file).")
        else:
            show_table(frame.set_index("rule"), "shadow")


def triage_form(db, rules: list[str]) -> None:
    """Outside the auto-refreshing part, so typing a reason is not interrupted by a refresh."""
    settings = get_settings()
    st.subheader("Triage an alert")
    if not settings.dashboard_triage:
        st.caption("Read-only dashboard. Mark alerts with `txnmon alerts mark`, or turn triage on here with "
                   "DASHBOARD_TRIAGE=true and DASHBOARD_ANALYST set to the analyst this dashboard serves.")
        return
    analyst = str(settings.dashboard_analyst)
    feed = queries.alerts_feed(db, None, rules, limit=200)
    if feed.empty:
        st.caption("No alerts to triage.")
        return
    with st.form("triage", clear_on_submit=True):
        alert_id = st.selectbox("Alert", list(feed["alert_id"]), format_func=lambda a: _label(feed, a))
        choice = st.radio("Disposition", CHOICES, horizontal=True,
                          format_func=lambda c: c.replace("_", " "))
        reason = st.text_input("Reason (optional)")
        show_caption(f"Marked as {analyst}")
        if st.form_submit_button("Save disposition"):
            doc = triage.mark(db, alert_id, choice, reason, analyst)
            st.success(f"Saved: {doc['alert_id']} marked {doc['disposition'].replace('_', ' ')}")


def _label(feed: pd.DataFrame, alert_id: str) -> str:
    row = feed[feed["alert_id"] == alert_id].iloc[0]
    return f"{alert_id} · {row['severity']} · {row['reason'][:60]}"


def page(span: dt.timedelta | None, rules: list[str]) -> None:
    db = _db()
    try:
        w = queries.data_window(db, span)
    except TxnmonError as exc:
        st.error(f"MongoDB is not reachable ({str(exc).split(',')[0]}). Is the stack up? Try `make up`.")
        return
    if w is None:
        st.info("No data yet. Run `make demo` (or replay a file and run `txnmon rollups`) and this page fills in.")
        alerts_only = queries.alerts_feed(db, None, rules, limit=50)
        if not alerts_only.empty:
            st.caption(f"{len(alerts_only)} alerts are stored but no rollups yet: run `txnmon rollups --full`.")
        return
    st.caption(f"Event time {w.start:%Y-%m-%d %H:%M} to {w.end:%Y-%m-%d %H:%M} UTC · "
               f"updated {time.strftime('%H:%M:%S')}")
    as_of = queries.kpis_as_of(db)  # every batch stored before this is in the numbers below
    st.caption(f"KPIs as of {as_of:%Y-%m-%d %H:%M:%S} UTC" if as_of else "KPIs as of: no rollup run recorded yet")
    headline(db, w)
    trend(db, w)
    left, right = st.columns(2)
    with left:
        bars("Revenue by category", queries.by_category(db, w), "category")
    with right:
        bars("Revenue by payment method", queries.by_payment(db, w), "payment_method")
    left, right = st.columns(2)
    with left:
        city_view(db, w)
    with right:
        bars("Top products", queries.by_product(db, w), "product")
    alerts(db, w, rules)
    rule_quality(db)
    rejected_and_shadow(db, w)


def main() -> None:
    st.title("txnmon · live transactions")
    try:
        get_settings()
    except ConfigError as exc:
        st.error(str(exc))
        return
    views = ["Live", "Cases", "Lists", "Audit"]
    view = st.sidebar.radio("Page", views, index=1 if st.query_params.get("case") else 0, horizontal=True)
    if view != "Live":
        settings = get_settings()
        try:
            desk.desk(_db(), view, str(settings.dashboard_analyst) if settings.dashboard_triage else None)
        except TxnmonError as exc:
            st.error(f"MongoDB is not reachable ({str(exc).split(',')[0]}). Is the stack up? Try `make up`.")
        return
    span, rules, refresh = sidebar()
    st.fragment(run_every=refresh)(page)(span, rules)
    try:
        triage_form(_db(), rules)
    except TxnmonError:
        pass  # the page above already says MongoDB is unreachable


main()
