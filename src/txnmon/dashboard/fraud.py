"""The Fraud page: alert rate, the alerts feed, rule quality, shadow rules, and the triage form."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from txnmon.core.triage import CHOICES
from txnmon.dashboard import queries
from txnmon.dashboard.widgets import data_window, md_code, money, show_caption, show_table
from txnmon.jobs import triage
from txnmon.settings import get_settings


def fraud_headline(db, w: queries.Window) -> None:
    h = queries.headline(db, w)
    cols = st.columns(3)
    cols[0].metric("Alert rate", f"{h['alert_rate']:.1%}", help=f"{h['alerts']:,} alerts")
    cols[1].metric("Alerts", f"{h['alerts']:,}")
    cols[2].metric("Transactions", f"{h['transactions']:,}")


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
            st.success(f"Saved: {md_code(doc['alert_id'])} marked {doc['disposition'].replace('_', ' ')}")


def _label(feed: pd.DataFrame, alert_id: str) -> str:
    row = feed[feed["alert_id"] == alert_id].iloc[0]
    return f"{alert_id} · {row['severity']} · {row['reason'][:60]}"


def fraud_page(db, span: dt.timedelta | None, rules: list[str]) -> None:
    w = data_window(db, span, rules)
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
