"""Synthetic, labelled e-commerce transactions: `txnmon generate`.

Clean traffic: users with a home city (a few travel for a day), a product catalogue with
prices and categories, a payment-method mix, a daily traffic curve, failed payments and
refunds. Injected fraud, labelled in `fraud_label` and grouped by `fraud_incident`:

  burst                   5-8 purchases by one user within a few minutes
  impossible_travel       a purchase far away minutes after one at home
  high_value_new_location a big purchase in a city the user never used
  high_amount             one purchase far above the user's usual basket
  refund_abuse            3-5 refunds within a few hours
  card_testing            3-6 failed payments within minutes

The same seed gives the same file, byte for byte. Vectorised with numpy: a million rows in
seconds, so detection quality can be measured on realistic volumes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from include.errors import UsageError

PATTERNS = ("burst", "impossible_travel", "high_value_new_location", "high_amount", "refund_abuse",
            "card_testing")
# the rule that is expected to catch each pattern (what recall is measured against)
PATTERN_RULES = {
    "burst": ("velocity",),
    "impossible_travel": ("impossible_travel",),
    "high_value_new_location": ("high_value_unusual_location",),
    "high_amount": ("high_amount",),
    "refund_abuse": ("excessive_refunds",),
    "card_testing": ("repeated_failed_payments",),
}
PATTERN_WEIGHTS = np.array([0.2, 0.15, 0.2, 0.15, 0.15, 0.15])
ROWS_PER_PATTERN = {"burst": 6.5, "impossible_travel": 1, "high_value_new_location": 1, "high_amount": 1,
                    "refund_abuse": 4, "card_testing": 4.5}

HOME_CITIES = np.array(["Mumbai", "Delhi", "Bangalore", "Chennai", "Kolkata", "Hyderabad", "Pune", "Ahmedabad",
                        "Jaipur", "Lucknow", "Surat", "Nagpur", "Indore", "Chandigarh", "Kochi"])
HOME_WEIGHTS = np.array([16, 16, 14, 9, 8, 9, 7, 5, 3, 3, 2, 2, 2, 2, 2], dtype=float)
FAR_CITIES = np.array(["London", "Dubai", "Singapore", "New York", "Hong Kong", "Bangkok", "Paris", "Sydney",
                       "Lagos", "São Paulo"])
PAYMENT_METHODS = np.array(["UPI", "Credit Card", "Debit Card", "Net Banking", "Wallet", "Cash on Delivery"])
PAYMENT_WEIGHTS = np.array([35, 25, 20, 10, 7, 3], dtype=float)
# (product, category, price in INR)
CATALOGUE = [
    ("Smartphone", "Electronics", 24_000), ("Laptop", "Electronics", 42_000), ("Headphones", "Electronics", 3_500),
    ("Smartwatch", "Electronics", 9_000), ("Television", "Electronics", 38_000), ("Tablet", "Electronics", 21_000),
    ("Power Bank", "Electronics", 1_400), ("Bluetooth Speaker", "Electronics", 2_800),
    ("T-Shirt", "Fashion", 600), ("Jeans", "Fashion", 1_800), ("Sneakers", "Fashion", 3_200),
    ("Saree", "Fashion", 2_500), ("Handbag", "Fashion", 2_200), ("Watch", "Fashion", 4_500),
    ("Rice 10kg", "Grocery", 750), ("Cooking Oil 5L", "Grocery", 900), ("Tea 1kg", "Grocery", 450),
    ("Dry Fruits", "Grocery", 1_100), ("Mixer Grinder", "Home & Kitchen", 3_600),
    ("Air Fryer", "Home & Kitchen", 6_500), ("Bedsheet Set", "Home & Kitchen", 1_300),
    ("Water Purifier", "Home & Kitchen", 14_000), ("Refrigerator", "Appliances", 32_000),
    ("Washing Machine", "Appliances", 28_000), ("Air Conditioner", "Appliances", 36_000),
    ("Novel", "Books", 350), ("Textbook", "Books", 900), ("Face Cream", "Beauty", 650),
    ("Perfume", "Beauty", 2_400), ("Cricket Bat", "Sports", 2_900), ("Yoga Mat", "Sports", 800),
    ("Toy Set", "Toys", 1_200),
]
CATALOGUE_WEIGHTS = np.array([6, 3, 6, 4, 2, 2, 6, 4, 10, 8, 6, 5, 5, 4, 9, 8, 8, 6, 3, 3, 5, 1, 1, 1, 1, 7, 4,
                              8, 4, 3, 5, 5], dtype=float)
# share of the day's traffic per hour (UTC here; a quiet night, a lunch bump, an evening peak)
HOURLY = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 4, 4.5, 5, 5.5, 5, 4.5, 4.5, 5, 5.5, 6.5, 7.5, 8, 7, 5,
                   2.5], dtype=float)

FAILED_RATE = 0.02
REFUND_RATE = 0.012
TRAVELLER_SHARE = 0.08  # users who spend one day in another Indian city


class GeneratorError(UsageError):
    """An argument of the generator is out of range."""


@dataclass(frozen=True)
class GeneratorSpec:
    rows: int
    users: int
    fraud_rate: float = 0.01
    seed: int = 42
    start: dt.date = dt.date(2025, 10, 1)
    days: int = 1

    def validate(self) -> None:
        if self.rows < 1:
            raise GeneratorError("--rows must be at least 1")
        if self.users < 1:
            raise GeneratorError("--users must be at least 1")
        if not 0 <= self.fraud_rate <= 0.5:
            raise GeneratorError("--fraud-rate must be between 0 and 0.5")
        if self.days < 1:
            raise GeneratorError("--days must be at least 1")


def _p(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


def _clean(spec: GeneratorSpec, n: int, rng: np.random.Generator) -> pd.DataFrame:
    users = spec.users
    home = rng.choice(HOME_CITIES, size=users, p=_p(HOME_WEIGHTS))
    preferred_pay = rng.choice(len(PAYMENT_METHODS), size=users, p=_p(PAYMENT_WEIGHTS))
    activity = np.clip(rng.lognormal(0, 0.6, size=users), 0.2, 4)
    user = rng.choice(users, size=n, p=activity / activity.sum())

    day = rng.integers(0, spec.days, size=n)
    hour = rng.choice(24, size=n, p=_p(HOURLY))
    second = rng.integers(0, 3600, size=n)
    start = np.datetime64(spec.start.isoformat(), "s")
    ts = start + (day * 86400 + hour * 3600 + second).astype("timedelta64[s]")

    location = home[user]
    traveller = rng.random(users) < TRAVELLER_SHARE
    trip_day = rng.integers(0, spec.days, size=users)
    away = rng.choice(HOME_CITIES, size=users)
    on_trip = traveller[user] & (trip_day[user] == day) & (away[user] != home[user])
    location = np.where(on_trip, away[user], location)

    item = rng.choice(len(CATALOGUE), size=n, p=_p(CATALOGUE_WEIGHTS))
    price = np.array([c[2] for c in CATALOGUE], dtype=float)[item] * rng.uniform(0.9, 1.1, size=n)
    quantity = np.where(price < 5_000, rng.choice([1, 1, 1, 2, 3], size=n), 1)
    amount = np.round(price * quantity, 2)

    pay = np.where(rng.random(n) < 0.75, preferred_pay[user], rng.choice(len(PAYMENT_METHODS), size=n,
                                                                         p=_p(PAYMENT_WEIGHTS)))
    status = np.where(rng.random(n) < FAILED_RATE, "failed", "success")
    kind = np.where(rng.random(n) < REFUND_RATE, "refund", "purchase")
    return pd.DataFrame({
        "user": user, "ts": ts, "amount": amount, "payment_method": PAYMENT_METHODS[pay], "location": location,
        "product": np.array([c[0] for c in CATALOGUE])[item], "category": np.array([c[1] for c in CATALOGUE])[item],
        "quantity": quantity, "status": status, "type": kind, "fraud_label": "", "fraud_incident": "",
        "home": home[user],
    })


def _inject(spec: GeneratorSpec, clean: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    target_rows = round(spec.rows * spec.fraud_rate)
    if target_rows == 0:
        return clean.iloc[:0].copy()
    mean_rows = float(np.dot(_p(PATTERN_WEIGHTS), [ROWS_PER_PATTERN[p] for p in PATTERNS]))
    incidents = max(1, round(target_rows / mean_rows))
    kinds = rng.choice(len(PATTERNS), size=incidents, p=_p(PATTERN_WEIGHTS))

    by_user = clean.sort_values(["user", "ts"], kind="stable")
    users_arr = by_user["user"].to_numpy()
    ts_arr = by_user["ts"].to_numpy()
    loc_arr = by_user["location"].to_numpy()
    first = np.searchsorted(users_arr, np.arange(spec.users), side="left")
    count = np.searchsorted(users_arr, np.arange(spec.users), side="right") - first
    eligible = np.flatnonzero(count >= 4)  # enough history for "usual" locations to exist
    if eligible.size == 0:
        eligible = np.arange(spec.users)
    end = np.datetime64(spec.start.isoformat(), "s") + np.timedelta64(spec.days * 86400, "s")

    rows: list[dict] = []
    for n_incident, k in enumerate(kinds):
        pattern = PATTERNS[k]
        incident = f"F{spec.seed}-{n_incident:06d}"
        u = int(rng.choice(eligible))
        history = slice(first[u], first[u] + count[u])
        times, places = ts_arr[history], loc_arr[history]
        after = 3 if count[u] >= 4 else 0
        lo = times[after] if count[u] else np.datetime64(spec.start.isoformat(), "s")
        span = max(int((end - lo) / np.timedelta64(1, "s")) - 7200, 1)
        t0 = lo + np.timedelta64(int(rng.integers(60, span + 60)), "s")
        home = places[after] if count[u] else "Mumbai"
        base = {"user": u, "payment_method": "Credit Card", "product": "Smartphone", "category": "Electronics",
                "quantity": 1, "status": "success", "type": "purchase", "fraud_label": pattern,
                "fraud_incident": incident, "home": home}

        def add(at: np.datetime64, amount: float, location: str, base: dict = base, **over: object) -> None:
            rows.append({**base, "ts": at, "amount": round(float(amount), 2), "location": location, **over})

        if pattern == "burst":
            for i in range(int(rng.integers(5, 9))):
                add(t0 + np.timedelta64(int(i * rng.integers(10, 45)), "s"), rng.uniform(1_500, 9_000), home,
                    product="Gift Card", category="Gift Cards")
        elif pattern == "impossible_travel":
            # the victim's genuine purchase at home, then the fraudster abroad minutes later
            add(t0, rng.uniform(300, 3_000), home, fraud_label="", fraud_incident="")
            add(t0 + np.timedelta64(int(rng.integers(120, 1500)), "s"), rng.uniform(2_000, 20_000),
                str(rng.choice(FAR_CITIES)))
        elif pattern == "high_value_new_location":
            used = set(places)
            fresh = [c for c in HOME_CITIES if c not in used] or ["Guwahati"]
            add(t0, rng.uniform(15_000, 45_000), str(rng.choice(fresh)), product="Laptop")
        elif pattern == "high_amount":
            add(t0, rng.uniform(60_000, 300_000), home, product="Gold Jewellery", category="Jewellery")
        elif pattern == "refund_abuse":
            for i in range(int(rng.integers(3, 6))):
                add(t0 + np.timedelta64(int(i * rng.integers(600, 3600)), "s"), rng.uniform(2_000, 25_000), home,
                    type="refund")
        elif pattern == "card_testing":
            for i in range(int(rng.integers(3, 7))):
                add(t0 + np.timedelta64(int(i * rng.integers(20, 120)), "s"), rng.uniform(1, 200), home,
                    status="failed", payment_method="Credit Card", product="Gift Card", category="Gift Cards")
    return pd.DataFrame(rows)


def generate(spec: GeneratorSpec) -> pd.DataFrame:
    """The labelled transactions as a DataFrame sorted by time, `spec.rows` rows."""
    spec.validate()
    rng = np.random.default_rng(spec.seed)
    # generate a full set of clean rows, then trim: incidents vary in size, the total may not
    clean = _clean(spec, spec.rows, rng)
    fraud = _inject(spec, clean, rng)
    # trim clean rows so the total is exactly `rows`, whatever the incidents' sizes came to
    keep = max(spec.rows - len(fraud), 0)
    if keep < len(clean):
        clean = clean.iloc[np.sort(rng.choice(len(clean), size=keep, replace=False))]
    df = pd.concat([clean, fraud], ignore_index=True).iloc[: spec.rows]
    df = df.sort_values(["ts", "user"], kind="stable").reset_index(drop=True)
    out = pd.DataFrame({
        "transaction_id": [f"G{spec.seed}-{i:08d}" for i in range(len(df))],
        "user_id": [f"U{u:06d}" for u in df["user"].to_numpy()],
        "amount": df["amount"].round(2),
        "payment_method": df["payment_method"],
        "location": df["location"],
        "timestamp": pd.to_datetime(df["ts"]).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "product": df["product"],
        "category": df["category"],
        "quantity": df["quantity"].astype(int),
        "currency": "INR",
        "status": df["status"],
        "type": df["type"],
        "fraud_label": df["fraud_label"],
        "fraud_incident": df["fraud_incident"],
    })
    return out


def write_csv(df: pd.DataFrame, path: Path, progress: Callable[[int, int], None] | None = None,
              chunk: int = 50_000) -> None:
    """The rows as CSV; `progress(rows_written, rows)` after each chunk of `chunk` rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if progress is None:
        df.to_csv(path, index=False, float_format="%.2f")
        return
    with path.open("w", newline="") as out:
        for first in range(0, max(len(df), 1), chunk):
            df.iloc[first:first + chunk].to_csv(out, index=False, header=first == 0, float_format="%.2f")
            progress(min(first + chunk, len(df)), len(df))
