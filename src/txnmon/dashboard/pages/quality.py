"""The dashboard's data-quality page: each suite's latest runs, pass or fail, the failing
expectations with sample values, and a link to the run's Data Docs page."""

from __future__ import annotations

import functools
import html
from pathlib import Path

import streamlit as st

from txnmon.adapters.mongo import MongoStore
from txnmon.dashboard import queries
from txnmon.dashboard.widgets import md_code
from txnmon.errors import ConfigError, TxnmonError
from txnmon.settings import get_settings

st.set_page_config(page_title="txnmon · data quality", page_icon="✅", layout="wide")
_STYLE = ("<style>.txnmon-quality{border-collapse:collapse;width:100%;font-size:0.9rem}"
          ".txnmon-quality th,.txnmon-quality td{border-bottom:1px solid #e6e6e6;padding:4px 8px;text-align:left;"
          "vertical-align:top}.txnmon-fail{color:#c0392b;font-weight:600}.txnmon-pass{color:#1e8449;font-weight:600}"
          ".txnmon-warn{color:#b9770e;font-weight:600}</style>")


@functools.cache
def _db() -> MongoStore:
    return MongoStore(get_settings())


def _status(run: dict) -> str:
    if run.get("critical_failed"):
        return '<span class="txnmon-fail">FAIL</span>'
    if not run.get("success"):
        return '<span class="txnmon-warn">WARN</span>'
    return '<span class="txnmon-pass">PASS</span>'


def _failures(run: dict) -> str:
    items = []
    for f in run.get("failed_expectations") or []:
        sample = ", ".join(html.escape(str(v)) for v in (f.get("sample") or []))
        items.append(f"<li>{html.escape(f['severity'])}: {html.escape(f['expectation'])}"
                     f"({html.escape(str(f.get('column') or ''))}) · {f.get('unexpected_count') or 0} unexpected"
                     + (f" · e.g. <code>{sample}</code>" if sample else "") + "</li>")
    return f"<ul>{''.join(items)}</ul>" if items else "none"


def _suite_table(suite: str, runs: list[dict], quality_dir: Path, base_url: str) -> str:
    rows = []
    for run in runs:
        link = queries.report_link(run.get("report_path"), quality_dir, base_url)
        report = f'<a href="{html.escape(link)}" target="_blank">Data Docs</a>' if link else "n/a"
        rows.append(f"<tr><td>{run['run_at']:%Y-%m-%d %H:%M:%S}</td><td>{run['interval_start']:%Y-%m-%d %H:%M} → "
                    f"{run['interval_end']:%Y-%m-%d %H:%M}</td><td>{run.get('rows', 0):,}</td><td>{_status(run)}</td>"
                    f"<td>{_failures(run)}</td><td>{report}</td></tr>")
    return (f'{_STYLE}<table class="txnmon-quality txnmon-suite-{html.escape(suite)}"><thead><tr><th>run at (UTC)</th>'
            "<th>interval</th><th>rows</th><th>result</th><th>failing expectations</th><th>report</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def main() -> None:
    st.title("Data quality")
    try:
        settings = get_settings()
        runs = queries.quality_runs(_db())
    except ConfigError as exc:
        st.error(md_code(exc))
        return
    except TxnmonError as exc:
        st.error(f"MongoDB is not reachable ({md_code(str(exc).split(',')[0])}). Is the stack up? Try `make up`.")
        return
    if not runs:
        st.info("No quality run yet: the data_quality DAG runs hourly, or run `txnmon quality`.")
        return
    st.caption("Latest runs of each suite (data_quality DAG or `txnmon quality`). FAIL: a critical expectation "
               "failed; WARN: only warnings. Reports open through the reports app in Airflow (REPORTS_URL).")
    quality_dir = Path(settings.reports_dir) / "quality"
    for suite, suite_runs in runs.items():
        st.subheader(suite)  # a suite name of suites.yaml, written by the quality job
        st.html(_suite_table(suite, suite_runs, quality_dir, settings.reports_url))


main()
