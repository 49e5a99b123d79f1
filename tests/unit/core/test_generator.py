"""`txnmon generate`: deterministic, valid against the data contract, labelled at the asked rate."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from cli import main
from include.core.backtest import normalise_rows
from include.core.generator import PATTERNS, GeneratorError, GeneratorSpec, generate


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return generate(GeneratorSpec(rows=20_000, users=2_000, fraud_rate=0.02, seed=5))


def test_same_seed_same_rows_other_seed_other_rows(sample):
    again = generate(GeneratorSpec(rows=20_000, users=2_000, fraud_rate=0.02, seed=5))
    pd.testing.assert_frame_equal(sample, again)
    other = generate(GeneratorSpec(rows=20_000, users=2_000, fraud_rate=0.02, seed=6))
    assert not sample["amount"].equals(other["amount"])


def test_exact_row_count_unique_ids_and_time_order(sample):
    assert len(sample) == 20_000
    assert sample["transaction_id"].is_unique
    assert sample["timestamp"].is_monotonic_increasing


def test_every_row_passes_the_data_contract(sample):
    txs, rejected = normalise_rows(sample.astype(str).to_dict("records"), ZoneInfo("UTC"),
                                   now=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    assert rejected == 0 and len(txs) == 20_000


def test_columns_and_realistic_mix(sample):
    assert list(sample.columns[:6]) == ["transaction_id", "user_id", "amount", "payment_method", "location",
                                        "timestamp"]
    clean = sample[sample["fraud_label"] == ""]
    assert 0.01 < (clean["status"] == "failed").mean() < 0.04
    assert 0.005 < (clean["type"] == "refund").mean() < 0.03
    assert clean["payment_method"].value_counts(normalize=True).index[0] == "UPI"
    assert (clean["amount"] > 0).all() and clean["amount"].median() < 5_000
    hours = pd.to_datetime(clean["timestamp"]).dt.hour.value_counts(normalize=True)
    assert hours.get(20, 0) > 3 * hours.get(3, 0), "evenings are busier than nights"


def test_fraud_rows_are_labelled_at_about_the_asked_rate(sample):
    fraud = sample[sample["fraud_label"] != ""]
    assert 0.015 <= len(fraud) / len(sample) <= 0.025
    assert set(fraud["fraud_label"]) == set(PATTERNS)
    assert (fraud["fraud_incident"] != "").all()
    bursts = fraud[fraud["fraud_label"] == "burst"].groupby("fraud_incident")
    assert bursts.size().min() >= 5
    assert bursts["user_id"].nunique().max() == 1


def test_zero_fraud_rate_gives_clean_data():
    df = generate(GeneratorSpec(rows=500, users=50, fraud_rate=0, seed=1))
    assert (df["fraud_label"] == "").all() and len(df) == 500


@pytest.mark.parametrize("spec", [GeneratorSpec(rows=0, users=1), GeneratorSpec(rows=10, users=0),
                                  GeneratorSpec(rows=10, users=1, fraud_rate=0.9)])
def test_bad_arguments_are_refused(spec):
    with pytest.raises(GeneratorError):
        generate(spec)


def test_cli_writes_the_file_and_refuses_bad_rates(tmp_path, capsys):
    out = tmp_path / "g.csv"
    assert main(["generate", "--rows", "300", "--users", "30", "--seed", "3", "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 300
    assert main(["generate", "--rows", "300", "--users", "30", "--fraud-rate", "0.7", "--out", str(out)]) == 2
    assert "--fraud-rate" in capsys.readouterr().err
