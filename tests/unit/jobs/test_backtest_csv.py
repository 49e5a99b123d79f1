"""`txnmon backtest --data`: the CSV's rows reach the contract exactly as `DataFrame.to_dict("records")`
gave them, five times faster (issue 29, item 4)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pandas as pd

from txnmon.core import backtest
from txnmon.jobs.backtest import csv_records, load_transactions
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

AWKWARD = (
    "\ufefftransaction_id,user_id,amount,location,location,timestamp,note\n"
    'T1,U1,"1,200.50","São Paulo",x,2025-10-01T10:00:00Z,"two\nlines"\n'
    "T2,U2,5,Delhi\n"  # a short row: the missing cells are NaN, as before
    ',,,,,,\n'
    '"T3", U3 ,007,"a ""quoted"" place",y,30-09-2025 10:05,\n'
)


def _read(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_rows_are_what_to_dict_gave(tmp_path):
    path = tmp_path / "awkward.csv"
    path.write_text(AWKWARD, encoding="utf-8")
    frame = _read(path)
    assert repr(csv_records(frame)) == repr(frame.to_dict("records"))  # repr: NaN cells compare too
    assert [type(v) for v in csv_records(frame)[1].values()] == [type(v) for v in frame.to_dict("records")[1].values()]


def test_a_generated_file_loads_as_before(tmp_path):
    path = tmp_path / "gen.csv"
    write_csv(generate(GeneratorSpec(rows=500, users=40, seed=3)), path)
    zone = ZoneInfo("Asia/Kolkata")
    expected = backtest.normalise_rows(_read(path).to_dict("records"), zone)
    assert load_transactions(path, zone) == expected and len(expected[0]) == 500
