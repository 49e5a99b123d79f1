"""Stock events and reviews of a generated day, coherent with its transactions
(`txnmon generate --events stock,reviews`).

Stock, per product and location (the city of the sales; `product_id` is the product's name, as in
the transactions): an opening count at the day's start (`label=opening`, `quantity_on_hand`) of
0.6 to 2.5 times the pair's sales, so some pairs run short, and restocks (`label=restock`, `delta`):
when what is left after a sale falls to a quarter of the opening count, a delivery is ordered and
arrives RESTOCK_LEAD_HOURS later, bringing the level back to the opening count. The successful
purchases deplete the stock; the stock file carries only what a warehouse system reports.

Reviews: a share of the successful purchases is reviewed 2-10 days later (after delivery) by the
buyer, with a rating (mostly 4-5) and a short text that matches it; `label` is the rating's
sentiment (positive, neutral, negative) and `transaction_id` the purchase reviewed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

OPENING_RANGE = (0.6, 2.5)  # opening count / the pair's sales of the day
REORDER_AT = 0.25  # of the opening count
RESTOCK_LEAD_HOURS = (2, 8)
REVIEW_SHARE = 0.15
REVIEW_DELAY_DAYS = (2, 10)
RATING_WEIGHTS = np.array([0.06, 0.06, 0.13, 0.33, 0.42])  # ratings 1..5
STOCK_COLUMNS = ["event_id", "product_id", "location", "quantity_on_hand", "delta", "timestamp", "source", "label"]
REVIEW_COLUMNS = ["review_id", "user_id", "product_id", "rating", "text", "timestamp", "transaction_id", "source",
                  "label"]
TEXTS = {
    1: ["Stopped working after two days, very disappointed.", "Terrible quality, returning it.",
        "Not as described and the seller never answered."],
    2: ["Below expectations, feels cheap.", "Arrived damaged, the replacement was slow.",
        "Works, but badly; would not buy again."],
    3: ["Okay for the price.", "Average product, nothing special.", "Does the job, packaging could be better."],
    4: ["Good value, works well.", "Nice quality, delivery was quick.", "Happy with it, minor issues only."],
    5: ["Excellent, exactly what I wanted!", "Love it, great quality and fast delivery.",
        "Superb product, highly recommend."],
}


def _sales(tx: pd.DataFrame) -> pd.DataFrame:
    sold = tx[(tx["type"] == "purchase") & (tx["status"] == "success")]
    return sold.assign(ts=pd.to_datetime(sold["timestamp"], utc=True).dt.tz_localize(None).to_numpy()
                       .astype("datetime64[s]"))


def stock_events(tx: pd.DataFrame, *, seed: int, start: np.datetime64) -> pd.DataFrame:
    """Opening counts and restocks per (product, location) of the successful purchases in `tx`."""
    rng = np.random.default_rng([seed, 31, 2])
    rows: list[tuple] = []
    sales = _sales(tx).sort_values(["product", "location", "ts"], kind="stable")
    for (product, location), group in sales.groupby(["product", "location"], sort=True):
        units = group["quantity"].to_numpy().astype(int)
        opening = max(1, math.ceil(units.sum() * rng.uniform(*OPENING_RANGE)))
        rows.append((start, product, location, opening, None, "opening"))
        level, due = opening, None  # due: (arrival, none yet counted) of the delivery on its way
        for at, sold in zip(group["ts"].to_numpy(), units, strict=True):
            if due is not None and at >= due:
                rows.append((due, product, location, None, opening - level, "restock"))
                level, due = opening, None
            level -= int(sold)
            if due is None and level <= REORDER_AT * opening:
                due = at + np.timedelta64(int(rng.integers(*RESTOCK_LEAD_HOURS) * 3600), "s")
        if due is not None:  # the last delivery of the day arrives too (later sales are not in the file)
            rows.append((due, product, location, None, opening - level, "restock"))
    df = pd.DataFrame(rows, columns=["ts", "product_id", "location", "quantity_on_hand", "delta", "label"])
    df = df.sort_values(["ts", "product_id", "location"], kind="stable").reset_index(drop=True)
    df["event_id"] = [f"I{seed}-{i:08d}" for i in range(len(df))]
    df["timestamp"] = pd.to_datetime(df["ts"]).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    for name in ("quantity_on_hand", "delta"):
        df[name] = df[name].astype("Int64")
    df["source"] = "wms"
    return df[STOCK_COLUMNS]


def reviews(tx: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """Reviews of REVIEW_SHARE of the successful purchases in `tx`, some days after each."""
    rng = np.random.default_rng([seed, 31, 3])
    sales = _sales(tx)
    picked = sales[rng.random(len(sales)) < REVIEW_SHARE].sort_values("ts", kind="stable")
    n = len(picked)
    ratings = rng.choice(np.arange(1, 6), size=n, p=RATING_WEIGHTS)
    delay = rng.integers(REVIEW_DELAY_DAYS[0] * 86400, REVIEW_DELAY_DAYS[1] * 86400, size=n)
    texts = [TEXTS[int(r)][int(rng.integers(len(TEXTS[int(r)])))] for r in ratings]
    df = pd.DataFrame({
        "ts": picked["ts"].to_numpy() + delay.astype("timedelta64[s]"),
        "user_id": picked["user_id"].to_numpy(), "product_id": picked["product"].to_numpy(), "rating": ratings,
        "text": texts, "transaction_id": picked["transaction_id"].to_numpy(),
    }).sort_values(["ts", "transaction_id"], kind="stable").reset_index(drop=True)
    df["review_id"] = [f"R{seed}-{i:08d}" for i in range(len(df))]
    df["timestamp"] = pd.to_datetime(df["ts"]).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    df["source"] = "app"
    df["label"] = np.select([df["rating"] >= 4, df["rating"] == 3], ["positive", "neutral"], "negative")
    return df[REVIEW_COLUMNS]
