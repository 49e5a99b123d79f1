"""txnmon live dashboard: `make dashboard` (Streamlit on http://127.0.0.1:8501).

Pages by audience, chosen in the sidebar (or `?page=Fraud` in the URL):

- Business: revenue, products, payment mix, the city heatmap, payment health (failure rate per
  method, gateway-outage alerts) and trends (trending products and cities, new regions);
- Fraud: alert rate, the alerts feed, rule quality, shadow rules, triage; Cases, Lists and Audit
  are the analyst's desk (src/txnmon/dashboard/desk.py);
- Operations: consumer lag, throughput, the DLQ, KPI and signal freshness.

The Business and Fraud pages read only the kpi_* rollups, the alerts, ops_alerts and trends
collections, refreshing every few seconds. It needs nothing outside this machine: charts are drawn
by the bundled Vega-Lite, the map's outlines are vendored TopoJSON (src/txnmon/dashboard/geomap.py).
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import time

import altair as alt
import pandas as pd
import streamlit as st

from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.core.triage import CHOICES
from txnmon.dashboard import desk, geomap, queries
from txnmon.errors import ConfigError, TxnmonError
from txnmon.jobs import status, triage
from txnmon.settings import get_settings

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
    open_ops = queries.ops_alerts(db)
    open_trends = queries.trends_feed(db)
    cols = st.columns(4)
    cols[0].metric("Revenue", money(h["revenue"]))
    cols[1].metric("Transactions", f"{h['transactions']:,}")
    cols[2].metric("Payment alerts open", f"{int((open_ops['status'] == 'open').sum()) if len(open_ops) else 0}")
    cols[3].metric("Trends open", f"{int((open_trends['status'] == 'open').sum()) if len(open_trends) else 0}")


def fraud_headline(db, w: queries.Window) -> None:
    h = queries.headline(db, w)
    cols = st.columns(3)
    cols[0].metric("Alert rate", f"{h['alert_rate']:.1%}", help=f"{h['alerts']:,} alerts")
    cols[1].metric("Alerts", f"{h['alerts']:,}")
    cols[2].metric("Transactions", f"{h['transactions']:,}")


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
    frame = queries.city_map_frame(db, w)
    located = frame.dropna(subset=["lat", "lon"])
    if located.empty:
        st.info("No located transactions in this range.")
        return
    world = st.session_state.get("map_world", False)
    try:
        chart = geomap.heatmap(frame, world=world)
    except geomap.OutlineError as exc:
        st.error(str(exc))
        return
    st.altair_chart(chart, width="content")
    outside = len(located) - len(geomap.focus(located, world))
    if outside:
        show_caption(f"{outside} more cities with the last {1 - geomap.FOCUS_SHARE:.0%} of revenue are outside "
                     "this view: tick \"World map\" in the sidebar.")
    show_caption("Circle: revenue (area and colour); red ring: live alerts. Outlines: Natural Earth countries "
                 "(world-atlas) and U.S. states (us-atlas), bundled; no map tiles.")
    unknown = frame[frame["lat"].isna()]
    if not unknown.empty:
        show_caption(f"Not on the map (no coordinates): {', '.join(str(x) for x in unknown['location'])}")


PAYMENT_CHART_MIN = 10  # buckets with fewer payments of a method are not drawn


def payment_health(db, w: queries.Window) -> None:
    st.subheader("Payment health")
    frame = queries.payment_health(db, w)
    frame = frame[frame["transactions"] >= PAYMENT_CHART_MIN]  # a 1-of-2 bucket's 50% says nothing
    if frame.empty:
        st.info("No payments in this range (kpi_signals_5min is filled by the rollup run).")
    else:
        chart = alt.Chart(frame).mark_line(point=False).encode(
            x=alt.X("bucket:T", title="event time (UTC), 5-minute buckets", axis=alt.Axis(format="%H:%M")),
            y=alt.Y("failure_rate:Q", title="failure rate", axis=alt.Axis(format="%")),
            color=alt.Color("payment_method:N", title="method"),
            tooltip=["payment_method", alt.Tooltip("bucket:T", format="%Y-%m-%d %H:%M"), "transactions",
                     "failed_payments", alt.Tooltip("failure_rate:Q", format=".1%")])
        st.altair_chart(chart.properties(height=260), width="stretch")
        show_caption(f"5-minute buckets with at least {PAYMENT_CHART_MIN} payments of the method.")
    alerts_frame = queries.ops_alerts(db)
    if alerts_frame.empty:
        st.caption("No payment-method failure spikes (ops_alerts).")
        return
    shown = alerts_frame[["opened_at", "status", "payment_method", "reason", "cleared_at"]].copy()
    for col in ("opened_at", "cleared_at"):
        shown[col] = pd.to_datetime(shown[col], utc=True).dt.strftime("%Y-%m-%d %H:%M").fillna("")
    show_table(shown.set_index("opened_at"), "ops-alerts")


def customers_view(db, w: queries.Window) -> None:
    st.subheader("Customers")
    c = queries.customers_summary(db, w)
    if c is None:
        st.info("No purchases in this range.")
        return
    cols = st.columns(4)
    cols[0].metric("New customers", f"{c['new_customers']:,}", help="first purchase ever in that hour, summed")
    cols[1].metric("Repeat-purchase rate", f"{c['repeat_purchase_rate']:.0%}",
                   help="returning customers / customers, over the hours of the range")
    cols[2].metric("Order value, new", money(c["aov_new"]) if c["aov_new"] is not None else "n/a")
    cols[3].metric("Order value, returning", money(c["aov_returning"]) if c["aov_returning"] is not None else "n/a")
    top = queries.top_customers(db, w)
    if not top.empty:
        top["revenue"] = top["revenue"].map(money)
        show_table(top.set_index("user_id"), "top-customers")
        show_caption("Top customers by revenue, from each hour's top 10 (kpi_customers_hour).")


def trends(db) -> None:
    st.subheader("Trends: fast-selling products, busy cities, new regions")
    frame = queries.trends_feed(db)
    if frame.empty:
        st.info("Nothing trending: no product or city is far above its trailing baseline.")
        return
    shown = frame[["opened_at", "kind", "key", "status", "reason", "cleared_at"]].copy()
    shown["kind"] = shown["kind"].str.replace("_", " ")
    for col in ("opened_at", "cleared_at"):
        shown[col] = pd.to_datetime(shown[col], utc=True).dt.strftime("%Y-%m-%d %H:%M").fillna("")
    show_table(shown.set_index("opened_at"), "trends")


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


def _window(db, span: dt.timedelta | None, rules: list[str]) -> queries.Window | None:
    """The range to show, or None after saying why there is nothing (no data, MongoDB down)."""
    try:
        w = queries.data_window(db, span)
    except TxnmonError as exc:
        st.error(f"MongoDB is not reachable ({str(exc).split(',')[0]}). Is the stack up? Try `make up`.")
        return None
    if w is None:
        st.info("No data yet. Run `make demo` (or replay a file and run `txnmon rollups`) and this page fills in.")
        alerts_only = queries.alerts_feed(db, None, rules, limit=50)
        if not alerts_only.empty:
            st.caption(f"{len(alerts_only)} alerts are stored but no rollups yet: run `txnmon rollups --full`.")
        return None
    st.caption(f"Event time {w.start:%Y-%m-%d %H:%M} to {w.end:%Y-%m-%d %H:%M} UTC · "
               f"updated {time.strftime('%H:%M:%S')}")
    as_of = queries.kpis_as_of(db)  # every batch stored before this is in the numbers below
    st.caption(f"KPIs as of {as_of:%Y-%m-%d %H:%M:%S} UTC" if as_of else "KPIs as of: no rollup run recorded yet")
    return w


def business_page(span: dt.timedelta | None, rules: list[str]) -> None:
    db = _db()
    w = _window(db, span, rules)
    if w is None:
        return
    headline(db, w)
    trend(db, w)
    left, right = st.columns(2)
    with left:
        bars("Revenue by category", queries.by_category(db, w), "category")
    with right:
        bars("Revenue by payment method", queries.by_payment(db, w), "payment_method")
    left, right = st.columns(2)
    with left:
        bars("Top products", queries.by_product(db, w), "product")
    with right:
        customers_view(db, w)
    city_view(db, w)
    payment_health(db, w)
    trends(db)


def fraud_page(span: dt.timedelta | None, rules: list[str]) -> None:
    db = _db()
    w = _window(db, span, rules)
    if w is None:
        return
    fraud_headline(db, w)
    alerts(db, w, rules)
    rule_quality(db)
    shadow_vs_live(db, w)


def shadow_vs_live(db, w: queries.Window) -> None:
    st.subheader("Shadow rules vs live alerts")
    frame = queries.shadow_vs_live(db, w)
    if frame.empty:
        st.info("No shadow-mode rule has hits in this range (`mode: shadow` in the rules file).")
    else:
        show_table(frame.set_index("rule"), "shadow")


@st.cache_data(ttl=10, show_spinner=False)
def _status_report() -> dict:
    return status.collect(get_settings())


def operations_page() -> None:
    db = _db()
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
        st.error(f"Kafka: {kafka_part.get('error', 'ok')} · MongoDB: {mongo_part.get('error', 'ok')}")
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


def kpi_freshness(kpis: dict, signals_state: dict | None) -> None:
    st.subheader("KPI freshness")
    if kpis.get("error"):
        st.error(kpis["error"])
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


VIEWS = ["Business", "Fraud", "Operations", "Cases", "Lists", "Audit"]


def main() -> None:
    st.title("txnmon · live transactions")
    try:
        get_settings()
    except ConfigError as exc:
        st.error(str(exc))
        return
    asked = str(st.query_params.get("page", "")).capitalize()
    index = VIEWS.index("Cases") if st.query_params.get("case") else VIEWS.index(asked) if asked in VIEWS else 0
    view = st.sidebar.radio("Page", VIEWS, index=index, horizontal=True)
    if view in ("Cases", "Lists", "Audit"):
        settings = get_settings()
        try:
            desk.desk(_db(), view, str(settings.dashboard_analyst) if settings.dashboard_triage else None)
        except TxnmonError as exc:
            st.error(f"MongoDB is not reachable ({str(exc).split(',')[0]}). Is the stack up? Try `make up`.")
        return
    if view == "Operations":
        refresh = st.sidebar.slider("Refresh every (seconds)", 2, 60, 10)
        st.fragment(run_every=refresh)(operations_page)()
        return
    span, rules, refresh = sidebar()
    if view == "Business":
        st.sidebar.checkbox("World map", key="map_world", help="fit the map to every city, not the main market")
    st.fragment(run_every=refresh)(business_page if view == "Business" else fraud_page)(span, rules)
    if view == "Fraud":
        try:
            triage_form(_db(), rules)
        except TxnmonError:
            pass  # the page above already says MongoDB is unreachable


main()
