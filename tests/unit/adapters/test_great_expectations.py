"""Data Docs over hostile record values: the report shows them as text, never as markup."""

from __future__ import annotations

import pandas as pd
import pytest

from txnmon.adapters.great_expectations import check_dataframe, escape_values

HOSTILE = ["<img src=x onerror=alert(1)>", "<script>alert(2)</script>", '"><svg onload=alert(3)>']


def test_escape_values_walks_results_and_leaves_numbers():
    result = {"partial_unexpected_list": HOSTILE[:1], "unexpected_count": 2,
              "partial_unexpected_counts": [{"value": HOSTILE[1], "count": 1}], "observed_value": 0.5}
    escaped = escape_values(result)
    assert escaped["partial_unexpected_list"] == ["&lt;img src=x onerror=alert(1)&gt;"]
    assert escaped["partial_unexpected_counts"] == [{"value": "&lt;script&gt;alert(2)&lt;/script&gt;", "count": 1}]
    assert escaped["unexpected_count"] == 2 and escaped["observed_value"] == 0.5


@pytest.mark.slow
def test_a_report_over_hostile_values_has_no_raw_markup(tmp_path):
    frame = pd.DataFrame({"payment_method": ["UPI", *HOSTILE], "transaction_id": ["a", "b", HOSTILE[0], HOSTILE[0]]})
    specs = [{"expectation": "expect_column_values_to_be_in_set", "severity": "warning",
              "kwargs": {"column": "payment_method", "value_set": ["UPI"]}},
             {"expectation": "expect_column_values_to_be_unique", "severity": "critical",
              "kwargs": {"column": "transaction_id"}}]
    outcome = check_dataframe("hostile", frame, specs, tmp_path)
    pages = sorted(tmp_path.rglob("*.html"))
    assert outcome.report_path and len(pages) >= 3
    report = (tmp_path / outcome.report_path.split(str(tmp_path) + "/", 1)[1]).read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in report  # the values are still shown, as text
    for page in pages:
        text = page.read_text()
        for raw in ("<img src=x onerror", "<script>alert", "<svg onload"):
            assert raw not in text, (page, raw)
    # the summary keeps the values as they are: the dashboard escapes them where it shows them
    assert outcome.outcomes[0].sample == HOSTILE
