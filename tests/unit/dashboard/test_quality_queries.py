"""The quality page's queries without a server: latest runs per suite, report links under the reports app."""

from __future__ import annotations

import datetime as dt

from txnmon.dashboard.queries import quality_runs, report_link

T = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class FakeDb:
    def __init__(self, docs: list[dict]) -> None:
        self.docs = docs

    def find(self, collection, query=None, sort=None, limit=0, projection=None):
        assert collection == "quality_reports" and sort == [("run_at", -1)]
        rows = sorted(self.docs, key=lambda d: d["run_at"], reverse=True)
        return rows[:limit] if limit else rows


def test_latest_runs_per_suite_newest_first_and_at_most_n():
    docs = [{"suite": s, "run_at": T + dt.timedelta(hours=h)} for h in range(8) for s in ("transactions", "alerts")]
    runs = quality_runs(FakeDb(docs), per_suite=3)
    assert list(runs) == ["alerts", "transactions"]
    assert [r["run_at"].hour for r in runs["transactions"]] == [7, 6, 5]


def test_report_links_go_through_the_reports_url_and_only_for_pages_under_the_site(tmp_path):
    page = tmp_path / "quality" / "validations" / "t" / "x.html"
    assert report_link(str(page), tmp_path / "quality", "http://127.0.0.1:8080/txnmon/quality/") == \
        "http://127.0.0.1:8080/txnmon/quality/validations/t/x.html"
    assert report_link("/etc/passwd", tmp_path / "quality", "http://h/") is None
    assert report_link(None, tmp_path / "quality", "http://h/") is None
