"""The Business page: revenue, products, payment mix, customers, the city heatmap, payment health
(failure rate per method, gateway-outage alerts), stock (depletion alerts, stock-outs), carts and reviews
(dashboard/events_views.py) and trends (trending products and cities, new regions)."""

from __future__ import annotations

import datetime as dt

import altair as alt
import pandas as pd
import streamlit as st

from txnmon.core.business_signals import PAYMENT_SPIKE
from txnmon.core.stock import STOCK_KINDS
from txnmon.dashboard import events_views, geomap, queries
from txnmon.dashboard.widgets import data_window, md_code, money, show_caption, show_table


def headline(db, w: queries.Window) -> None:
    h = queries.headline(db, w)
    open_ops = queries.ops_alerts(db, kinds=[PAYMENT_SPIKE])
    open_trends = queries.trends_feed(db)
    cols = st.columns(4)
    cols[0].metric("Revenue", money(h["revenue"]))
    cols[1].metric("Transactions", f"{h['transactions']:,}")
    cols[2].metric("Payment alerts open", f"{int((open_ops['status'] == 'open').sum()) if len(open_ops) else 0}")
    cols[3].metric("Trends open", f"{int((open_trends['status'] == 'open').sum()) if len(open_trends) else 0}")


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
        st.error(md_code(exc))
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
    alerts_frame = queries.ops_alerts(db, kinds=[PAYMENT_SPIKE])
    if alerts_frame.empty:
        st.caption("No payment-method failure spikes (ops_alerts).")
        return
    shown = alerts_frame[["opened_at", "status", "payment_method", "reason", "cleared_at"]].copy()
    for col in ("opened_at", "cleared_at"):
        shown[col] = pd.to_datetime(shown[col], utc=True).dt.strftime("%Y-%m-%d %H:%M").fillna("")
    show_table(shown.set_index("opened_at"), "ops-alerts")


def stock_view(db) -> None:
    st.subheader("Stock: depletion alerts and stock-outs")
    frame = queries.ops_alerts(db, kinds=STOCK_KINDS)
    if frame.empty:
        st.caption("No product is projected to run out within the restock lead time (ops_alerts).")
        return
    shown = frame[["opened_at", "kind", "status", "product", "location", "reason", "cleared_at"]].copy()
    shown["kind"] = shown["kind"].str.replace("_", " ")
    for col in ("opened_at", "cleared_at"):
        shown[col] = pd.to_datetime(shown[col], utc=True).dt.strftime("%Y-%m-%d %H:%M").fillna("")
    show_table(shown.set_index("opened_at"), "stock-alerts")


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


def business_page(db, span: dt.timedelta | None, rules: list[str]) -> None:
    w = data_window(db, span, rules)
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
    stock_view(db)
    events_views.carts_view(db, w)
    events_views.reviews_view(db, w)
    trends(db)
