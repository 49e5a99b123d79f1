"""The analyst's desk in the dashboard: the case inbox, a case page, lists and the audit trail.

Every value is shown as escaped text (`show_table`, `show_caption` in src/txnmon/dashboard/widgets.py's style);
text that reaches a Markdown-rendering call (subheader, error, metric) goes through `md_code`: a case id
is user data, and the `?case=` URL parameter is whatever a link says.
Actions (assign, note, close, list entries) are recorded as DASHBOARD_ANALYST and only offered
when DASHBOARD_TRIAGE is on; each one leaves one audit entry (src/txnmon/jobs).
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from txnmon.core import geo
from txnmon.core.cases import RESOLUTIONS, STATUSES
from txnmon.core.rules import RULE_NAMES
from txnmon.dashboard.widgets import md_code
from txnmon.errors import TxnmonError
from txnmon.jobs import audit, cases, lists

_STYLE = ("<style>.txnmon-table{border-collapse:collapse;width:100%;font-size:0.9rem}"
          ".txnmon-table th,.txnmon-table td{border-bottom:1px solid #e6e6e6;padding:4px 8px;text-align:left;"
          "vertical-align:top}.txnmon-caption{color:#6b6b6b;font-size:0.85rem;margin:0 0 0.5rem}</style>")


def table(frame: pd.DataFrame, name: str) -> None:
    st.html(_STYLE + frame.to_html(escape=True, border=0, index=False, classes=["txnmon-table", f"txnmon-{name}"]))


def caption(text: str) -> None:
    st.html(f'{_STYLE}<p class="txnmon-caption">{html.escape(text)}</p>')


def _t(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, dt.datetime) else ""


def _age(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours * 60:.0f} min" if hours < 2 else f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def _explain(why: dict[str, Any] | None) -> str:
    if not why:
        return "(no explanation stored)"
    parts = []
    params = {k: v for k, v in why.get("params", {}).items()
              if v is not None and k not in ("severity", "score") and not isinstance(v, dict | list)}
    if params:
        parts.append("params: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    for sig in why.get("signals", []):  # a typology: each present signal, its weight and what it saw
        parts.append(f"{sig['signal']} +{sig['weight']:g}: {sig['reason']}")
        factors = (sig.get("measured") or {}).get("top_features", [])
        if factors:  # the model's signal: its top contributing features, against the user's baseline
            parts.append("top factors: " + "; ".join(f["text"] for f in factors))
    if why.get("measured"):
        parts.append("measured: " + ", ".join(f"{k}={v}" for k, v in why["measured"].items()))
    if why.get("counted"):
        parts.append("counted: " + ", ".join(why["counted"]))
    for e in why.get("entries", []):
        parts.append(f"list entry {e['_id']} ({e['reason']})")
    return " · ".join(parts)


def inbox(db: Any, open_case: Callable[[str], None]) -> None:
    st.subheader("Case inbox")
    left, mid, right = st.columns(3)
    status = left.selectbox("Status", ["open and investigating", *STATUSES], index=0)
    rule = mid.selectbox("Rule", ["any rule", *RULE_NAMES], index=0)
    assignee = right.text_input("Assignee", "")
    rows = cases.list_cases(db, status=None if status == "open and investigating" else status,
                            rule=None if rule == "any rule" else rule, assignee=assignee.strip() or None)
    if not rows:
        st.info("No cases match. Cases open by themselves when the processor raises alerts.")
        return
    frame = pd.DataFrame([{"case": r["_id"], "user": r["user_id"], "status": r["status"], "severity": r["severity"],
                           "amount at risk": f"{r['amount_at_risk']:,.2f}", "alerts": r["alerts"],
                           "rules": ", ".join(r.get("rules", [])), "age": _age(r["age"]),
                           "assignee": r.get("assignee") or "-"} for r in rows])
    table(frame, "inbox")
    chosen = st.selectbox("Case", [r["_id"] for r in rows], key="inbox-choice")
    if st.button("Open case"):
        open_case(chosen)
        st.rerun()


def _map(view: dict[str, Any]) -> None:
    points = []
    for tx in view["timeline"]:
        city = geo.lookup(str(tx.get("location", "")))
        if city is not None:
            points.append({"location": tx["location"], "lat": city.lat, "lon": city.lon,
                           "alert": bool(tx.get("alert_reasons"))})
    if not points:
        caption("No located transactions for a map.")
        return
    frame = pd.DataFrame(points).groupby(["location", "lat", "lon"], as_index=False).agg(
        transactions=("alert", "size"), alerts=("alert", "sum"))
    dots = alt.Chart(frame).mark_circle(opacity=0.7, color="#d62728").encode(
        longitude="lon:Q", latitude="lat:Q", size=alt.Size("transactions:Q", legend=None),
        tooltip=["location", "transactions", "alerts"])
    labels = alt.Chart(frame).mark_text(dy=-12, fontSize=11).encode(longitude="lon:Q", latitude="lat:Q",
                                                                    text="location")
    st.altair_chart((dots + labels).project("mercator").properties(height=300), width="stretch")


def case_page(db: Any, case_id: str, analyst: str | None, back: Callable[[], None]) -> None:
    if st.button("Back to the inbox"):
        back()
        st.rerun()
    try:
        view = cases.show_case(db, case_id)
    except TxnmonError as exc:
        st.error(md_code(exc))  # the message carries the case id of the URL
        return
    c = view["case"]
    st.subheader(f"Case {md_code(c['_id'])}")
    cols = st.columns(5)
    cols[0].metric("Status", c["status"] + (f" ({c['resolution']})" if c.get("resolution") else ""))  # enums
    cols[1].metric("Amount at risk", f"{c['amount_at_risk']:,.2f}")
    cols[2].metric("Alerts", f"{c['alerts']}")
    cols[3].metric("Age", _age(c["age"]))
    cols[4].metric("Assignee", md_code(c.get("assignee") or "-"))
    caption(f"User {c['user_id']} · severity {c['severity']} · window {_t(c['window_start'])} to "
            f"{_t(c['window_end'])} UTC")

    st.markdown("**Alerts and why they fired**")
    table(pd.DataFrame([{"event time": _t(a["event_time"]), "alert": a["_id"], "severity": a["severity"],
                         "reason": a["reason"], "explanation": _explain(a.get("explanation"))}
                        for a in view["alerts"]]), "case-alerts")
    st.markdown("**Timeline of the user's transactions**")
    if view["timeline"]:
        table(pd.DataFrame([{"event time": _t(t["event_time"]), "transaction": t["_id"],
                             "amount": f"{t.get('amount', 0):,.2f}", "location": t.get("location", ""),
                             "alerts": ", ".join(t.get("alert_reasons") or [])} for t in view["timeline"]]),
              "timeline")
        _map(view)
    else:
        caption("No stored transactions around this case.")
    st.markdown("**Notes**")
    for n in c.get("notes", []):
        caption(f"{_t(n['at'])} · {n['by']}: {n['text']}")
    if not c.get("notes"):
        caption("No notes yet.")
    _actions(db, c, analyst)
    st.markdown("**Audit trail**")
    table(pd.DataFrame([{"at": _t(e["at"]), "who": e["who"], "action": e["action"]} for e in view["audit"]]
                       or [{"at": "", "who": "", "action": "none yet"}]), "case-audit")


def _actions(db: Any, c: dict[str, Any], analyst: str | None) -> None:
    if analyst is None:
        caption("Read-only: work cases with `txnmon cases`, or set DASHBOARD_TRIAGE=true and DASHBOARD_ANALYST.")
        return
    if c["status"] == "closed":
        caption(f"Closed as {c.get('resolution')} by {c.get('closed_by')} at {_t(c.get('closed_at'))} UTC.")
        return
    caption(f"Actions are recorded as {analyst}.")
    left, mid, right = st.columns(3)
    with left, st.form("assign", clear_on_submit=True):
        who = st.text_input("Assign to", analyst)
        if st.form_submit_button("Assign"):
            _do(lambda: cases.assign(db, c["_id"], who, analyst), "Assigned")
    with mid, st.form("note", clear_on_submit=True):
        text = st.text_area("Note")
        if st.form_submit_button("Add note"):
            _do(lambda: cases.note(db, c["_id"], text, analyst), "Note added")
    with right, st.form("close", clear_on_submit=True):
        resolution = st.radio("Resolution", RESOLUTIONS, format_func=lambda r: r.replace("_", " "))
        reason = st.text_input("Reason (optional)")
        if st.form_submit_button("Close case"):
            _do(lambda: cases.close(db, c["_id"], resolution, analyst, reason), "Case closed")


def _do(action: Callable[[], Any], done: str) -> None:
    try:
        action()
    except TxnmonError as exc:
        st.error(md_code(exc))  # may quote what was typed (a list value, an assignee)
        return
    st.session_state["desk-flash"] = done
    st.rerun()


def lists_page(db: Any, analyst: str | None) -> None:
    st.subheader("Lists")
    rows = lists.entries(db, include_inactive=True)
    if rows:
        table(pd.DataFrame([{"list": e["list"], "value": e["value"], "rule": e.get("rule") or "",
                             "reason": e["reason"], "added by": e["added_by"], "added": _t(e["added_at"]),
                             "expires": _t(e.get("expires_at")) or "never",
                             "state": "removed" if e.get("removed_at") else "active"
                             if lists.core.is_active(e, dt.datetime.now(dt.UTC)) else "expired"} for e in rows]),
              "lists")
    else:
        st.info("No list entries yet.")
    if analyst is None:
        caption("Read-only: manage lists with `txnmon lists`, or turn DASHBOARD_TRIAGE on.")
        return
    with st.form("list-add", clear_on_submit=False):  # a refused entry keeps what was typed
        name = st.selectbox("List", ["blocked_users", "risky_locations", "trusted_users"])
        value = st.text_input("Value (user id or location)")
        rule = st.selectbox("Rule to silence (trusted_users only)", ["", *RULE_NAMES])
        days = st.number_input("Expires in days (0: never; trusted_users at most 180)", 0, 3650, 30)
        reason = st.text_input("Reason / justification")
        if st.form_submit_button("Add entry"):
            expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=int(days)) if days else None
            _do(lambda: lists.add_entry(db, name, value, reason=reason, by=analyst, expires_at=expires,
                                        rule=rule or None), "Entry added")
    active = [e for e in rows if lists.core.is_active(e, dt.datetime.now(dt.UTC))]
    if active:
        with st.form("list-remove", clear_on_submit=True):
            gone = st.selectbox("Entry to remove", [e["_id"] for e in active])
            if st.form_submit_button("Remove entry"):
                e = next(x for x in active if x["_id"] == gone)
                _do(lambda: lists.remove_entry(db, e["list"], e["value"], rule=e.get("rule"), by=analyst),
                    "Entry removed")


def audit_page(db: Any) -> None:
    st.subheader("Audit trail (newest first)")
    rows = audit.entries(db, limit=200)
    if not rows:
        st.info("Nothing recorded yet.")
        return
    from txnmon.core.audit import changed_fields

    table(pd.DataFrame([{"at": _t(e["at"]), "who": e["who"], "action": e["action"], "target": e["target"],
                         "changed": ", ".join(changed_fields(e.get("before"), e.get("after")))} for e in rows]),
          "audit")


def desk(db: Any, view: str, analyst: str | None) -> None:
    flash = st.session_state.pop("desk-flash", None)
    if flash:
        st.success(flash)  # one of this module's own sentences
    if view == "Lists":
        lists_page(db, analyst)
    elif view == "Audit":
        audit_page(db)
    else:
        case_id = st.session_state.get("case") or st.query_params.get("case")

        def open_case(cid: str) -> None:
            st.session_state["case"] = cid

        def back() -> None:
            st.session_state["case"] = None
            st.query_params.clear()

        if case_id:
            case_page(db, case_id, analyst, back)
        else:
            inbox(db, open_case)
