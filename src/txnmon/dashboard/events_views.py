"""The dashboard sections over the event walks: Carts and Reviews on the Business page, stock alerts with
their projection and recent interventions on the Operations page. Every value goes through the escaped
widgets (show_table, show_caption): product names come from events anyone can send."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from txnmon.dashboard import event_queries as eq
from txnmon.dashboard.queries import Window
from txnmon.dashboard.widgets import money, show_caption, show_table


def _pct(x: float | None) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{x:.1%}"


def _when(frame: pd.DataFrame, *cols: str) -> pd.DataFrame:
    for col in cols:
        frame[col] = pd.to_datetime(frame[col], utc=True).dt.strftime("%Y-%m-%d %H:%M").fillna("")
    return frame


def _num(x: float | None, fmt: str) -> str:
    return "" if x is None or pd.isna(x) else format(x, fmt)


def carts_view(db, w: Window) -> None:
    st.subheader("Carts: funnel and abandonment")
    f = eq.cart_funnel(db, w)
    if not f["carts"]:
        st.caption("No decided carts in this range (cart_outcomes is filled by the cart-abandonment walk).")
        return
    cols = st.columns(6)
    cols[0].metric("Carts", f"{f['carts']:,}")
    cols[1].metric("Checkouts started", f"{f['checkouts']:,}")
    cols[2].metric("Purchased", f"{f['purchased']:,}")
    cols[3].metric("Abandoned", f"{f['abandoned']:,}")
    cols[4].metric("Abandonment rate", _pct(f["abandonment_rate"]))
    cols[5].metric("Recovered carts", f"{f['recovered']:,}", help="abandoned carts whose user bought one of "
                   "their products within 24 h")
    hourly = eq.abandonment_by_hour(db, w)
    if len(hourly) > 1:  # one point draws no line
        chart = alt.Chart(hourly).mark_line(point=True).encode(
            x=alt.X("hour:T", title="hour of the carts' first events (UTC)"),
            y=alt.Y("rate:Q", title="abandonment rate", axis=alt.Axis(format="%")),
            tooltip=[alt.Tooltip("hour:T", format="%Y-%m-%d %H:%M"), "carts", "abandoned",
                     alt.Tooltip("rate:Q", format=".1%")])
        st.altair_chart(chart.properties(height=220), width="stretch")
    left, right = st.columns(2)
    for col, frame, key, name in ((left, eq.abandonment_by_product(db, w), "product", "cart-products"),
                                  (right, eq.abandonment_by_payment(db, w), "payment_method", "cart-payments")):
        with col:
            shown = frame.head(15).copy()
            shown["rate"] = shown["rate"].map(_pct)
            show_table(shown.set_index(key), name)
    show_caption("Carts by the hour of their first event (cart_outcomes); per product from kpi_abandonment_hour, "
                 "where a cart counts once under each product it held.")


def reviews_view(db, w: Window) -> None:
    st.subheader("Reviews: rating and sentiment per product")
    table = eq.sentiment_by_product(db, w)
    if table.empty:
        st.caption("No scored reviews in this range (kpi_sentiment_hour is filled by the sentiment walk).")
    else:
        left, right = st.columns(2)
        with left:
            show_table(_sentiment_shown(table.head(15)), "sentiment")
            show_caption("Mean sentiment: VADER compound score, -1 (very negative) to +1; lowest first.")
        with right:
            low = eq.lowest_recent_sentiment(db, w)
            st.markdown("**Lowest sentiment, last 24 hours of the range**")
            if low.empty:
                st.caption(f"No product has {eq.MIN_RECENT_REVIEWS} or more reviews in the last 24 hours.")
            else:
                show_table(_sentiment_shown(low), "sentiment-low")
    alerts = eq.open_sentiment_alerts(db)
    if alerts.empty:
        st.caption("No open sentiment drops (ops_alerts).")
        return
    st.markdown("**Open sentiment drops**")
    shown = _when(alerts[eq.SENTIMENT_ALERT_COLUMNS].copy(), "opened_at")
    for col in ("baseline", "recent", "drop"):
        shown[col] = shown[col].map(lambda x: _num(x, "+.2f"))
    show_table(shown.set_index("opened_at"), "sentiment-alerts")


def _sentiment_shown(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.copy()
    shown["mean_rating"] = shown["mean_rating"].map(lambda x: _num(x, ".2f"))
    shown["mean_sentiment"] = shown["mean_sentiment"].map(lambda x: _num(x, "+.2f"))
    shown["share_negative"] = shown["share_negative"].map(_pct)
    return shown.set_index("product")


def stock_alerts_view(db) -> None:
    st.subheader("Stock alerts: open depletions and stock-outs")
    frame = eq.open_stock_alerts(db)
    if frame.empty:
        st.caption("No open stock alerts (ops_alerts).")
        return
    shown = _when(frame[eq.STOCK_ALERT_COLUMNS].copy(), "opened_at", "projected_stockout_at", "stocked_out_at")
    shown["kind"] = shown["kind"].str.replace("_", " ")
    shown["level"] = shown["level"].map(lambda x: _num(x, ",.0f"))
    shown["rate_per_hour"] = shown["rate_per_hour"].map(lambda x: _num(x, ",.2f"))
    shown["lead_time_minutes"] = shown["lead_time_minutes"].map(lambda x: _num(x, ",.0f"))
    show_table(shown.rename(columns={"projected_stockout_at": "projected stock-out", "lead_time_minutes":
                                     "lead time (min)", "rate_per_hour": "sold per hour",
                                     "stocked_out_at": "stocked out"}).set_index("opened_at"),
               "stock-projection")
    show_caption("The projection when the alert opened: level / units sold per hour over the rate window.")


def interventions_view(db) -> None:
    st.subheader("Interventions recently raised")
    frame = eq.interventions(db)
    if frame.empty:
        st.caption("No interventions yet (the cart-abandonment walk raises them).")
        return
    shown = _when(frame[eq.INTERVENTION_COLUMNS].copy(), "at")
    shown["trigger"] = shown["trigger"].str.replace("_", " ")
    shown["value"] = shown["value"].map(lambda x: "" if x is None or pd.isna(x) else money(x))
    show_table(shown.set_index("at"), "interventions")
