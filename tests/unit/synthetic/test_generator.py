"""`txnmon generate`: deterministic, valid against the data contract, labelled at the asked rate."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from txnmon.cli import main
from txnmon.core import geo
from txnmon.core.backtest import normalise_rows
from txnmon.synthetic.generator import (
    BEHAVIOUR_SHARES,
    BEHAVIOURS,
    PATTERNS,
    GeneratorError,
    GeneratorSpec,
    generate,
    parse_behaviour_shares,
)


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return generate(GeneratorSpec(rows=20_000, users=2_000, fraud_rate=0.02, seed=5))


def test_same_seed_same_rows_other_seed_other_rows(sample):
    again = generate(GeneratorSpec(rows=20_000, users=2_000, fraud_rate=0.02, seed=5))
    pd.testing.assert_frame_equal(sample, again)
    other = generate(GeneratorSpec(rows=20_000, users=2_000, fraud_rate=0.02, seed=6))
    assert not sample["amount"].equals(other["amount"])


def test_exact_row_count_unique_ids_and_arrival_order(sample):
    assert len(sample) == 20_000
    assert sample["transaction_id"].is_unique
    # the file is in arrival order: event time, but for the late rows, each at most 10 minutes late
    ts = pd.to_datetime(sample["timestamp"])
    seen = ts.cummax().shift(fill_value=ts.iloc[0])
    late = ts < seen
    assert 0.01 < late.mean() < 0.05
    assert ((seen - ts)[late] <= pd.Timedelta(minutes=10)).all()
    # ids follow event time, so a late row's id is lower than those of rows that arrived before it
    assert (sample.loc[late, "transaction_id"].to_numpy() < sample["transaction_id"].cummax().shift().loc[late]
            .to_numpy()).all()


def test_every_clean_behaviour_is_there_and_labelled(sample):
    clean = sample[sample["fraud_label"] == ""]
    assert set(clean["behaviour"]) == set(BEHAVIOURS)
    assert (sample.loc[sample["fraud_label"] != "", "behaviour"] == "").all()
    assert (clean["behaviour"] == "ordinary").mean() > 0.5


def _by_user(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(ts=pd.to_datetime(df["timestamp"])).sort_values(["user_id", "ts"], kind="stable")


def test_travellers_fly_a_plausible_distance_hours_after_their_last_purchase_at_home(sample):
    rows = _by_user(sample[sample["fraud_label"] == ""])
    domestic = abroad = 0
    for _, user in rows.groupby("user_id"):
        away = user["behaviour"].to_numpy() == "traveller"
        if not away.any() or away.all():
            continue
        first = int(away.argmax())
        before, after = user.iloc[first - 1], user.iloc[first]
        a, b = geo.lookup(before["location"]), geo.lookup(after["location"])
        km, gap = geo.distance_km(a, b), after["ts"] - before["ts"]
        if a.country == b.country:
            assert 1_000 <= km <= 1_500 and gap >= pd.Timedelta(hours=3)
            domestic += 1
        else:  # a trip abroad: at least the flight at 800 km/h and an hour
            assert km > 1_500 and gap >= pd.Timedelta(hours=km / 800 + 1)
            abroad += 1
    assert domestic > 50 and abroad > 10


def test_the_seed_reports_case_and_impossible_travel_abroad_have_their_shape(sample):
    rows = _by_user(sample)
    cases = rows[rows["fraud_label"] == "unusual_location"]
    assert len(cases) > 8
    thin = 0
    for _, tx in cases.iterrows():
        before = rows[(rows["user_id"] == tx["user_id"]) & (rows["ts"] < tx["ts"])]
        here, last = geo.lookup(tx["location"]), geo.lookup(before.iloc[-1]["location"])
        assert here.country not in {geo.lookup(p).country for p in before["location"]}
        # the usual payment method, far above the usual amount, and no faster than a plane
        assert tx["payment_method"] == before["payment_method"].mode().sort_values().iloc[0]
        assert tx["amount"] >= 35_000 and tx["amount"] >= 4 * before["amount"].median()
        assert tx["ts"] - before.iloc[-1]["ts"] >= pd.Timedelta(hours=geo.distance_km(here, last) / 800)
        thin += len(before) < 3
    assert thin >= 1  # users with little history too
    travel = rows[rows["fraud_label"] == "impossible_travel"]
    gaps = []
    for _, tx in travel.iterrows():
        before = rows[(rows["user_id"] == tx["user_id"]) & (rows["ts"] < tx["ts"])].iloc[-1]
        a, b = geo.lookup(before["location"]), geo.lookup(tx["location"])
        gap = tx["ts"] - before["ts"]
        assert a.country != b.country and geo.distance_km(a, b) / (gap.total_seconds() / 3600) > 900
        gaps.append(gap)
    assert max(gaps) > pd.Timedelta(hours=1)  # not only minutes: the old rule caught only 30 of them


def test_multi_item_checkouts_share_a_minute_a_method_and_a_place(sample):
    items = _by_user(sample[sample["behaviour"] == "multi_item_checkout"])
    baskets = items.groupby(["user_id", "payment_method", "location", items["ts"].dt.floor("D")])
    sizes = []
    for _, basket in baskets:
        span = basket["ts"].max() - basket["ts"].min()
        if span <= pd.Timedelta(seconds=60):
            sizes.append(len(basket))
    assert len(sizes) > 100 and sum(3 <= n <= 4 for n in sizes) / len(sizes) > 0.9


def test_a_declined_payment_is_retried_with_the_same_amount_minutes_later(sample):
    retries = _by_user(sample[sample["behaviour"] == "declined_retry"])
    failed = retries[retries["status"] == "failed"]
    assert len(failed) > 100
    paid = retries[retries["status"] == "success"].set_index(["user_id", "amount"])["ts"]
    for _, f in failed.iterrows():
        later = paid.loc[(f["user_id"], f["amount"])]
        gap = (later if isinstance(later, pd.Timestamp) else later.iloc[0]) - f["ts"]
        assert pd.Timedelta(seconds=30) <= gap <= pd.Timedelta(minutes=3)


def test_fraud_patterns_have_their_shape(sample):
    rows = _by_user(sample)
    testing = rows[rows["fraud_label"] == "card_testing"]
    assert (testing["amount"] <= 200).all() and (testing["status"] == "failed").mean() > 0.5
    for _, tx in rows[rows["fraud_label"] == "account_takeover"].iterrows():
        before = rows[(rows["user_id"] == tx["user_id"]) & (rows["ts"] < tx["ts"])]
        assert len(before) >= 3
        assert tx["location"] not in set(before["location"]) and tx["payment_method"] not in set(
            before["payment_method"])
        assert tx["amount"] >= 3 * before.loc[before["type"] != "refund", "amount"].median()


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
                                  GeneratorSpec(rows=10, users=1, fraud_rate=0.9),
                                  GeneratorSpec(rows=10, users=1, late_share=0.7),
                                  GeneratorSpec(rows=10, users=1, checkout_share=0.3, sale_share=0.3,
                                                payday_share=0.1)])
def test_bad_arguments_are_refused(spec):
    with pytest.raises(GeneratorError):
        generate(spec)


def test_cli_writes_the_file_and_refuses_bad_rates(tmp_path, capsys):
    out = tmp_path / "g.csv"
    assert main(["generate", "--rows", "300", "--users", "30", "--seed", "3", "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == 300
    assert main(["generate", "--rows", "300", "--users", "30", "--fraud-rate", "0.7", "--out", str(out)]) == 2
    assert "--fraud-rate" in capsys.readouterr().err


def test_behaviour_shares_name_the_behaviour_labels():
    assert set(BEHAVIOUR_SHARES) == set(BEHAVIOURS) - {"ordinary"}
    assert set(BEHAVIOUR_SHARES.values()) <= set(vars(GeneratorSpec(rows=1, users=1)))
    assert parse_behaviour_shares(["all=0", "late_arrival=0.2"]) == {
        **dict.fromkeys(BEHAVIOUR_SHARES.values(), 0.0), "late_share": 0.2}


@pytest.mark.parametrize("text, says", [("travel=0.1", "unknown behaviour 'travel'"), ("payday", "NAME=SHARE"),
                                        ("payday=lots", "not a number"), ("payday=nan", "not a number")])
def test_a_bad_behaviour_argument_says_what_is_wrong(text, says):
    with pytest.raises(GeneratorError, match=says):
        parse_behaviour_shares([text])


def test_cli_turns_behaviours_on_and_off(tmp_path, capsys):
    out = tmp_path / "g.csv"
    args = ["generate", "--rows", "3000", "--users", "300", "--seed", "3", "--out", str(out)]
    assert main([*args, "--behaviour", "all=0", "--behaviour", "late_arrival=0.2", "--max-delay", "120"]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    # the file is in arrival order: a late row comes after rows up to --max-delay newer than it, no more
    seen_newest = pd.to_datetime(df["timestamp"]).cummax().shift(fill_value=pd.Timestamp(0, tz="UTC"))
    overtaken_by = (seen_newest - pd.to_datetime(df["timestamp"])).dt.total_seconds()
    assert overtaken_by[df["behaviour"] == "late_arrival"].max() <= 120
    df = df[df["fraud_label"] == ""]  # injected fraud has no clean behaviour
    assert set(df["behaviour"]) == {"ordinary", "late_arrival"}
    assert 0.15 < (df["behaviour"] == "late_arrival").mean() < 0.25
    for bad, says in ((["--behaviour", "payday=0.9"], "payday"), (["--max-delay", "30"], "at least 60 s")):
        assert main([*args, *bad]) == 2
        assert says in capsys.readouterr().err


def test_the_behaviour_help_states_the_specs_defaults(capsys):
    # the help is written out (building the parser must not import numpy): this keeps it true
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    defaults = GeneratorSpec(rows=1, users=1)
    for label, field in BEHAVIOUR_SHARES.items():
        found = re.search(rf"{label} \((?:of \w+; )?(?:default )?([0-9.]+)\)", text)
        assert found and float(found[1]) == getattr(defaults, field), label


def test_every_fraud_pattern_has_the_rules_expected_to_catch_it():
    """The backtest measures recall against PATTERN_RULES (in the core, which never imports the generator)."""
    from txnmon.core.backtest import PATTERN_RULES

    assert set(PATTERN_RULES) == set(PATTERNS)
