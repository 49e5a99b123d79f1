"""`txnmon generate --events`: carts, stock and reviews drawn from the day's transactions, coherent
with them, valid against their contracts, and the transactions file unchanged by the option."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from txnmon.cli import main
from txnmon.core.event_contracts import EVENT_KINDS
from txnmon.synthetic.carts import ABANDON_QUIET
from txnmon.synthetic.events import generate_events, parse_event_kinds
from txnmon.synthetic.generator import GeneratorError, GeneratorSpec, generate

SPEC = GeneratorSpec(rows=3000, users=300, fraud_rate=0.02, seed=11)
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def day() -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    tx = generate(SPEC)
    return tx, generate_events(tx, SPEC, ["carts", "stock", "reviews"])


def _ts(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True, format="ISO8601")


def test_the_transactions_file_is_byte_identical_with_or_without_the_events(tmp_path, capsys):
    plain, with_events = tmp_path / "plain.csv", tmp_path / "with.csv"
    args = ["generate", "--rows", "400", "--users", "40", "--seed", "3"]
    assert main([*args, "--out", str(plain)]) == 0
    assert main([*args, "--out", str(with_events), "--events", "all", "--events-dir", str(tmp_path / "ev")]) == 0
    assert plain.read_bytes() == with_events.read_bytes()
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == ["carts.csv", "reviews.csv", "stock.csv"]
    assert "abandoned" in capsys.readouterr().out


def test_every_event_passes_its_kinds_contract(day):
    _, frames = day
    for kind, frame in frames.items():
        contract = EVENT_KINDS[kind]
        for row in frame.to_dict("records"):
            obj = {k: v for k, v in row.items() if not pd.isna(v) and v != ""}
            contract.normalise(obj, zone=ZoneInfo("UTC"), now=NOW)  # raises on a bad row
        assert frame[contract.columns[0]].is_unique


def test_every_purchase_ends_its_own_cart_whose_items_sum_to_its_amount(day):
    tx, frames = day
    carts = frames["carts"]
    purchases = tx[tx["type"] == "purchase"].set_index("transaction_id")
    checkouts = carts[carts["transaction_id"].fillna("") != ""]
    assert sorted(checkouts["transaction_id"]) == sorted(purchases.index)
    assert (checkouts["event_type"] == "checkout_started").all() and (checkouts["label"] == "purchased").all()
    paid = purchases.loc[checkouts["transaction_id"]]
    assert (paid["user_id"].to_numpy() == checkouts["user_id"].to_numpy()).all()
    lead = _ts(paid["timestamp"]).to_numpy() - _ts(checkouts["timestamp"]).to_numpy()
    assert ((lead >= pd.Timedelta(seconds=10)) & (lead <= pd.Timedelta(seconds=90))).all()
    sign = carts["event_type"].map({"item_added": 1, "item_removed": -1}).fillna(0)
    cents = (sign * (carts["price"].fillna(0) * 100).round() * carts["quantity"].fillna(0).astype(int))
    per_cart = cents.groupby(carts["cart_id"]).sum()
    expected = (paid["amount"] * 100).round().astype(int)
    assert (per_cart.loc[checkouts["cart_id"]].to_numpy() == expected.to_numpy()).all()
    ends = carts.groupby("cart_id")["event_type"].agg(["first", "last"]).loc[checkouts["cart_id"]]
    assert (ends["first"] == "cart_created").all() and (ends["last"] == "checkout_started").all()
    assert (carts.groupby("cart_id")["user_id"].nunique() == 1).all()


def test_abandoned_carts_have_no_purchase_within_the_quiet_time_and_some_repeat(day):
    tx, frames = day
    carts = frames["carts"]
    abandoned = carts[carts["label"] == "abandoned"]
    n_purchases = int((tx["type"] == "purchase").sum())
    assert 0.2 * n_purchases < abandoned["cart_id"].nunique() <= 0.3 * n_purchases + 50
    assert (abandoned["transaction_id"].fillna("") == "").all()
    tx_times = tx.assign(ts=_ts(tx["timestamp"]))
    for cart_id, cart in abandoned.groupby("cart_id"):
        last = _ts(cart["timestamp"]).max()
        theirs = tx_times[tx_times["user_id"] == cart["user_id"].iloc[0]]["ts"]
        assert not ((theirs >= last - pd.Timedelta(minutes=30)) & (theirs <= last + pd.Timedelta(
            seconds=ABANDON_QUIET))).any() or (cart["scenario"] == "after_failed_payment").all(), cart_id
    per_user = abandoned.groupby("user_id")["cart_id"].nunique()
    assert (per_user >= 2).sum() > 5  # repeat abandoners
    assert (abandoned["scenario"] == "after_failed_payment").any()
    assert {"item_added", "checkout_started"} <= set(abandoned["event_type"])


def test_stock_opens_per_product_and_place_sold_and_restocks_bring_it_back(day):
    tx, frames = day
    stock = frames["stock"]
    sold = tx[(tx["type"] == "purchase") & (tx["status"] == "success")]
    pairs = set(zip(sold["product"], sold["location"], strict=True))
    opening = stock[stock["label"] == "opening"]
    assert set(zip(opening["product_id"], opening["location"], strict=True)) == pairs
    assert (opening["timestamp"] == "2025-10-01T00:00:00Z").all()
    restocks = stock[stock["label"] == "restock"]
    assert len(restocks) > 10 and (restocks["delta"] > 0).all()
    # replaying the sales against opening + restocks: a restock tops up to the opening count
    short = 0
    for (product, place), group in restocks.groupby(["product_id", "location"]):
        start = int(opening[(opening["product_id"] == product) & (opening["location"] == place)]
                    ["quantity_on_hand"].iloc[0])
        theirs = sold[(sold["product"] == product) & (sold["location"] == place)]
        first = _ts(group["timestamp"]).iloc[0]
        before = int(theirs.loc[_ts(theirs["timestamp"]) < first, "quantity"].sum())
        assert int(group["delta"].iloc[0]) == before
        short += start - before <= 0
    assert short > 0  # some pairs run out before the delivery arrives: something for a stock-out alert


def test_reviews_follow_their_purchases_by_days_with_a_matching_label(day):
    tx, frames = day
    reviews = frames["reviews"]
    bought = tx.set_index("transaction_id")
    assert 0.1 < len(reviews) / int(((tx["type"] == "purchase") & (tx["status"] == "success")).sum()) < 0.2
    paid = bought.loc[reviews["transaction_id"]]
    assert (paid["user_id"].to_numpy() == reviews["user_id"].to_numpy()).all()
    assert (paid["product"].to_numpy() == reviews["product_id"].to_numpy()).all()
    assert (paid["status"] == "success").all()
    gap = _ts(reviews["timestamp"]).to_numpy() - _ts(paid["timestamp"]).to_numpy()
    assert ((gap >= pd.Timedelta(days=2)) & (gap <= pd.Timedelta(days=10))).all()
    for row in reviews.itertuples():
        assert row.label == ("positive" if row.rating >= 4 else "neutral" if row.rating == 3 else "negative")
    assert set(reviews["rating"]) == {1, 2, 3, 4, 5}


def test_same_seed_same_events():
    tx = generate(GeneratorSpec(rows=500, users=50, seed=2))
    first = generate_events(tx, GeneratorSpec(rows=500, users=50, seed=2), ["carts", "stock", "reviews"])
    again = generate_events(tx, GeneratorSpec(rows=500, users=50, seed=2), ["reviews", "carts", "stock"])
    for kind in first:
        pd.testing.assert_frame_equal(first[kind], again[kind])


@pytest.mark.parametrize("text", ["", "carts,clicks", "transactions"])
def test_an_unknown_event_kind_is_refused(text):
    with pytest.raises(GeneratorError, match="--events"):
        parse_event_kinds(text)
