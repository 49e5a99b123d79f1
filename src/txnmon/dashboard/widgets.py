"""What every dashboard page shows data with: escaped tables and captions, code spans for data in the
st.* calls that render Markdown (subheader, error, success, metric...), money, the event-time window."""

from __future__ import annotations

import datetime as dt
import html
import re
import time
from typing import Any

import pandas as pd
import streamlit as st

from txnmon.dashboard import queries
from txnmon.errors import TxnmonError

_TABLE_STYLE = ("<style>.txnmon-table{border-collapse:collapse;width:100%;font-size:0.9rem}"
                ".txnmon-table th,.txnmon-table td{border-bottom:1px solid #e6e6e6;padding:4px 8px;text-align:left}"
                ".txnmon-caption{color:#6b6b6b;font-size:0.85rem;margin:0 0 0.5rem}</style>")


_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
_BACKTICKS = re.compile(r"`+")


def md_code(value: Any) -> str:
    """`value` as a Markdown code span, for the st.* calls that render their text as Markdown
    (st.subheader, st.error, st.success, st.metric...). Inside a code span nothing is parsed: a case id
    or URL parameter such as `[x](http://evil)`, `![i](http://evil/i.png)` or `<b>` shows as those
    characters, no link, image or HTML. Backslash-escaping would not do: Streamlit's GFM turns a bare
    `http://...` into a link after escapes are resolved, but never inside code. The fence is one
    backtick longer than any run in the value, and spaces around it keep a leading or trailing
    backtick apart from the fence (CommonMark strips exactly one space on each side)."""
    text = _LINE_BREAKS.sub(" ", str(value))
    if not text.strip():
        return "-"  # a code span of spaces keeps its spaces, and an empty one is no code span
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    return f"{fence} {text} {fence}"


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


def data_window(db, span: dt.timedelta | None, rules: list[str]) -> queries.Window | None:
    """The range to show, or None after saying why there is nothing (no data, MongoDB down)."""
    try:
        w = queries.data_window(db, span)
    except TxnmonError as exc:
        st.error(f"MongoDB is not reachable ({md_code(str(exc).split(',')[0])}). Is the stack up? Try `make up`.")
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
