"""Synthetic, labelled e-commerce transactions: `txnmon generate`.

Clean traffic behaves like real shoppers, each row labelled in `behaviour`:

  ordinary             users with a home city, a product catalogue with prices and categories,
                       a payment-method mix, a daily traffic curve, some failed payments and refunds
  traveller            a flight to a city 1,000-1,500 km away, then ordinary purchases there,
                       three or more hours after the last one at home
  multi_item_checkout  three or four items in the same minute, same payment method and place
  declined_retry       a declined payment, then the same amount paid a minute or two later
                       (half of the time with another of the user's payment methods)
  payday               payday purchases from the dear end of the catalogue
  sales_spike          an evening flash sale: many users buying within the same hour
  late_arrival         an ordinary row that reaches the pipeline a few minutes late (the file is
                       in arrival order; `timestamp` stays the event time)

Injected fraud, labelled in `fraud_label` and grouped by `fraud_incident`:

  burst             5-8 gift-card purchases by one user, one every minute or two
  impossible_travel a purchase abroad minutes after one at home
  account_takeover  a big purchase in a city the user never used, with a payment method never used
  high_amount       one purchase far above the user's usual basket
  refund_abuse      3-5 refunds within a few hours
  card_testing      3-6 tiny payments within minutes, most of them declined

The same seed gives the same file, byte for byte. Vectorised with numpy where it matters: a
million rows in seconds, so detection quality can be measured on realistic volumes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from txnmon.core import geo
from txnmon.errors import UsageError

PATTERNS = ("burst", "impossible_travel", "account_takeover", "high_amount", "refund_abuse", "card_testing")
# the typology (or single-condition rule) expected to catch each pattern: what recall is measured
# against (the rule of rules-file version 1 second, so both generations can be backtested)
PATTERN_RULES = {
    "burst": ("velocity",),
    "impossible_travel": ("impossible_travel",),
    "account_takeover": ("account_takeover", "high_value_unusual_location"),
    "high_amount": ("high_amount",),
    "refund_abuse": ("refund_abuse", "excessive_refunds"),
    "card_testing": ("card_testing", "repeated_failed_payments"),
}
PATTERN_WEIGHTS = np.array([0.2, 0.15, 0.2, 0.15, 0.15, 0.15])
ROWS_PER_PATTERN = {"burst": 6.5, "impossible_travel": 1, "account_takeover": 1, "high_amount": 1,
                    "refund_abuse": 4, "card_testing": 4.5}
BEHAVIOURS = ("ordinary", "traveller", "multi_item_checkout", "declined_retry", "payday", "sales_spike",
              "late_arrival")

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

FAILED_RATE = 0.015
REFUND_RATE = 0.012


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
    # realistic clean behaviours (see the module's docstring); 0 turns one off
    traveller_share: float = 0.08      # of users: one trip in the period
    checkout_share: float = 0.05       # of rows: the first item of a multi-item checkout
    retry_share: float = 0.02          # of rows: a declined payment retried
    payday_share: float = 0.04         # of rows: a payday purchase from the dear end of the catalogue
    sale_share: float = 0.05           # of rows: bought in the day's flash-sale hour
    late_share: float = 0.03           # of rows: arriving late
    max_delay_s: int = 600             # a late row arrives up to this long after its event time

    def validate(self) -> None:
        if self.rows < 1:
            raise GeneratorError("--rows must be at least 1")
        if self.users < 1:
            raise GeneratorError("--users must be at least 1")
        if not 0 <= self.fraud_rate <= 0.5:
            raise GeneratorError("--fraud-rate must be between 0 and 0.5")
        if self.days < 1:
            raise GeneratorError("--days must be at least 1")
        shares = {label: getattr(self, field) for label, field in BEHAVIOUR_SHARES.items()}
        for label, value in shares.items():
            if not 0 <= value <= 0.5:
                raise GeneratorError(f"behaviour {label}: its share must be between 0 and 0.5, got {value}")
        row_shares = sum(shares.values()) - self.traveller_share  # traveller is a share of users
        if row_shares > 0.6:
            raise GeneratorError("the clean behaviours' row shares (all but traveller, a share of users) add up "
                                 f"to more than 0.6: {row_shares:g}")
        if self.max_delay_s < 60:
            raise GeneratorError(f"the late rows' maximum delay must be at least 60 s, got {self.max_delay_s}")


# a clean behaviour's label (the `behaviour` column) -> the GeneratorSpec field with its share
BEHAVIOUR_SHARES = {
    "traveller": "traveller_share",
    "multi_item_checkout": "checkout_share",
    "declined_retry": "retry_share",
    "payday": "payday_share",
    "sales_spike": "sale_share",
    "late_arrival": "late_share",
}


def parse_behaviour_shares(texts: list[str]) -> dict[str, float]:
    """`["traveller=0.2", "late_arrival=0"]` -> GeneratorSpec keyword arguments; `all=0` turns every
    clean behaviour off (later items still apply). Ranges are checked by GeneratorSpec.validate."""
    shares: dict[str, float] = {}
    for text in texts:
        label, sep, value = text.partition("=")
        label = label.strip()
        if not sep:
            raise GeneratorError(f"--behaviour {text!r}: expected NAME=SHARE, e.g. traveller=0.1")
        try:
            share = float(value)
        except ValueError:
            raise GeneratorError(f"--behaviour {text!r}: {value!r} is not a number") from None
        if share != share:
            raise GeneratorError(f"--behaviour {text!r}: the share is not a number")
        if label == "all":
            shares.update(dict.fromkeys(BEHAVIOUR_SHARES.values(), share))
        elif label in BEHAVIOUR_SHARES:
            shares[BEHAVIOUR_SHARES[label]] = share
        else:
            raise GeneratorError(f"--behaviour {text!r}: unknown behaviour {label!r}; one of "
                                 f"{', '.join(BEHAVIOUR_SHARES)} or all")
    return shares


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
        "home": home[user], "behaviour": "ordinary", "delay": 0,
    })


# --- realistic clean behaviours: each takes the clean rows and returns them changed or extended ---

_CATALOGUE_PRICES = np.array([c[2] for c in CATALOGUE], dtype=float)
_DEAR = np.flatnonzero(_CATALOGUE_PRICES >= 9_000)  # payday buys: electronics and appliances


def _trip_destinations() -> dict[str, list[str]]:
    """Home city -> the home cities 1,000-1,500 km from it (a domestic flight)."""
    out: dict[str, list[str]] = {}
    for a in HOME_CITIES:
        ca = geo.lookup(str(a))
        out[str(a)] = [str(b) for b in HOME_CITIES
                       if b != a and ca is not None and (cb := geo.lookup(str(b))) is not None
                       and 1_000 <= geo.distance_km(ca, cb) <= 1_500]
    return out


def _travel(spec: GeneratorSpec, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Travellers fly 1,000-1,500 km: their rows after a split are at the destination, at least
    three hours (plus up to two more) after their last row at home."""
    if spec.traveller_share == 0 or df.empty:
        return df
    destinations = _trip_destinations()
    df = df.sort_values(["user", "ts"], kind="stable").reset_index(drop=True)
    users_arr = df["user"].to_numpy()
    bounds = np.flatnonzero(np.diff(users_arr)) + 1
    starts = np.concatenate(([0], bounds))
    ends = np.concatenate((bounds, [len(df)]))
    travels = rng.random(len(starts)) < spec.traveller_share
    ts = df["ts"].to_numpy().copy()
    location = df["location"].to_numpy().copy()
    behaviour = df["behaviour"].to_numpy().copy()
    for first, end, travelling in zip(starts, ends, travels, strict=True):
        if not travelling or end - first < 2:
            continue
        split = int(rng.integers(first + 1, end))
        options = destinations.get(str(location[first]), [])
        if not options:
            continue
        gap = ts[split] - ts[split - 1]
        need = np.timedelta64(3 * 3600 + int(rng.integers(0, 2 * 3600)), "s")
        if gap < need:
            ts[split:end] += need - gap
        location[split:end] = options[int(rng.integers(len(options)))]
        behaviour[split:end] = "traveller"
    return df.assign(ts=ts, location=location, behaviour=behaviour)


def _pick(df: pd.DataFrame, share: float, rng: np.random.Generator, of: np.ndarray | None = None) -> np.ndarray:
    """Positions of about `share` of the rows, among ordinary successful purchases (or `of`)."""
    pool = of if of is not None else np.flatnonzero(
        (df["behaviour"].to_numpy() == "ordinary") & (df["status"].to_numpy() == "success")
        & (df["type"].to_numpy() == "purchase"))
    n = min(round(len(df) * share), len(pool))
    return np.sort(rng.choice(pool, size=n, replace=False)) if n else np.array([], dtype=int)


def _checkouts(spec: GeneratorSpec, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Multi-item checkouts: 2-3 more items with the first's user, method and place, in the same minute."""
    firsts = _pick(df, spec.checkout_share, rng)
    if firsts.size == 0:
        return df
    df = df.copy()
    df.loc[df.index[firsts], "behaviour"] = "multi_item_checkout"
    extra = np.repeat(firsts, rng.integers(2, 4, size=firsts.size))
    items = df.iloc[extra].copy()
    item = rng.choice(len(CATALOGUE), size=len(items), p=_p(CATALOGUE_WEIGHTS))
    items["product"] = np.array([c[0] for c in CATALOGUE])[item]
    items["category"] = np.array([c[1] for c in CATALOGUE])[item]
    items["quantity"] = 1
    items["amount"] = np.round(_CATALOGUE_PRICES[item] * rng.uniform(0.9, 1.1, size=len(items)), 2)
    items["ts"] = items["ts"].to_numpy() + rng.integers(1, 50, size=len(items)).astype("timedelta64[s]")
    return pd.concat([df, items], ignore_index=True)


def _retries(spec: GeneratorSpec, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """A declined payment, then the same amount paid 30 s to 3 min later, half of the time with
    another of the user's own payment methods (one the user paid with elsewhere in the data)."""
    declined = _pick(df, spec.retry_share, rng)
    if declined.size == 0:
        return df
    df = df.copy()
    at = df.index[declined]
    df.loc[at, "status"] = "failed"
    df.loc[at, "behaviour"] = "declined_retry"
    retry = df.loc[at].copy()
    retry["status"] = "success"
    retry["ts"] = retry["ts"].to_numpy() + rng.integers(30, 180, size=len(retry)).astype("timedelta64[s]")
    methods_of = df.groupby("user")["payment_method"].agg(lambda m: sorted(set(m)))
    switch = rng.random(len(retry)) < 0.5
    retry["payment_method"] = [
        (lambda own, cur: next((m for m in own if m != cur), cur))(methods_of[u], cur) if sw else cur
        for u, cur, sw in zip(retry["user"], retry["payment_method"], switch, strict=True)]
    return pd.concat([df, retry], ignore_index=True)


def _payday(spec: GeneratorSpec, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Payday: some purchases from the dear end of the catalogue, at home, with the usual methods."""
    rows = _pick(df, spec.payday_share, rng)
    if rows.size == 0:
        return df
    df = df.copy()
    item = rng.choice(_DEAR, size=rows.size)
    at = df.index[rows]
    df.loc[at, "product"] = np.array([c[0] for c in CATALOGUE])[item]
    df.loc[at, "category"] = np.array([c[1] for c in CATALOGUE])[item]
    df.loc[at, "quantity"] = 1
    df.loc[at, "amount"] = np.round(_CATALOGUE_PRICES[item] * rng.uniform(0.9, 1.1, size=rows.size), 2)
    df.loc[at, "behaviour"] = "payday"
    return df


def _sales_spike(spec: GeneratorSpec, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """A flash sale each day at 20:00-21:00 UTC: extra purchases by many users within that hour."""
    n = round(len(df) * spec.sale_share)
    if n == 0 or df.empty:
        return df
    # travellers are left out: a sale purchase during their flight would put them in two places
    travellers = df.loc[df["behaviour"].to_numpy() == "traveller", "user"].unique()
    pool = np.flatnonzero((df["behaviour"].to_numpy() == "ordinary") & (df["status"].to_numpy() == "success")
                          & (df["type"].to_numpy() == "purchase") & ~df["user"].isin(travellers).to_numpy())
    source = _pick(df, spec.sale_share, rng, of=pool)
    buys = df.iloc[source].copy()
    start = np.datetime64(spec.start.isoformat(), "s")
    day = rng.integers(0, spec.days, size=len(buys))
    buys["ts"] = start + (day * 86400 + 20 * 3600 + rng.integers(0, 3600, size=len(buys))).astype("timedelta64[s]")
    item = rng.choice(len(CATALOGUE), size=len(buys), p=_p(CATALOGUE_WEIGHTS))
    buys["product"] = np.array([c[0] for c in CATALOGUE])[item]
    buys["category"] = np.array([c[1] for c in CATALOGUE])[item]
    buys["amount"] = np.round(_CATALOGUE_PRICES[item] * rng.uniform(0.6, 0.8, size=len(buys)), 2)  # on sale
    buys["quantity"] = 1
    buys["behaviour"] = "sales_spike"
    # the sale is where the user is at that time: the place of the user's latest row before it
    buys = buys.assign(_order=np.arange(len(buys))).sort_values("ts", kind="stable")
    rows = df[["user", "ts", "location"]].sort_values("ts", kind="stable").rename(columns={"location": "_there"})
    placed = pd.merge_asof(buys, rows, on="ts", by="user", direction="backward")
    placed["location"] = placed["_there"].where(placed["_there"].notna(), placed["location"])
    buys = placed.sort_values("_order", kind="stable").drop(columns=["_order", "_there"])
    return pd.concat([df, buys], ignore_index=True)


def _late(spec: GeneratorSpec, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Some rows reach the pipeline late: `delay` seconds after their event time (ordinary rows so
    delayed are labelled late_arrival; others keep their behaviour's label)."""
    late = rng.random(len(df)) < spec.late_share
    if not late.any():
        return df
    df = df.copy()
    delay = df["delay"].to_numpy().copy()
    delay[late] = rng.integers(60, spec.max_delay_s + 1, size=int(late.sum()))
    df["delay"] = delay
    df.loc[late & (df["behaviour"].to_numpy() == "ordinary"), "behaviour"] = "late_arrival"
    return df


def _realistic(spec: GeneratorSpec, clean: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The clean behaviours, in an order where each sees the one before (a traveller's checkout is away)."""
    for step in (_travel, _checkouts, _retries, _payday, _sales_spike):
        clean = step(spec, clean, rng)
    return clean


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
    pay_arr = by_user["payment_method"].to_numpy()
    amount_arr = by_user["amount"].to_numpy()
    first = np.searchsorted(users_arr, np.arange(spec.users), side="left")
    count = np.searchsorted(users_arr, np.arange(spec.users), side="right") - first
    # enough history for "usual" locations to exist; travellers are left out (an incident during
    # their flight would put the genuine user in two places, which no detector can call clean)
    travelling = np.zeros(spec.users, dtype=bool)
    travelling[clean.loc[clean["behaviour"].to_numpy() == "traveller", "user"].unique().astype(int)] = True
    eligible = np.flatnonzero((count >= 4) & ~travelling)
    if eligible.size == 0:
        eligible = np.arange(spec.users)
    end = np.datetime64(spec.start.isoformat(), "s") + np.timedelta64(spec.days * 86400, "s")

    rows: list[dict] = []
    victims: list[int] = []
    for n_incident, k in enumerate(kinds):
        pattern = PATTERNS[k]
        incident = f"F{spec.seed}-{n_incident:06d}"
        # one incident per victim while victims last: a second attack on a taken-over account
        # would meet the first one's traces (its city, its payment method) as "usual"
        fresh_victims = np.setdiff1d(eligible, victims) if len(victims) < eligible.size else eligible
        u = int(rng.choice(fresh_victims))
        victims.append(u)
        history = slice(first[u], first[u] + count[u])
        times, places, methods = ts_arr[history], loc_arr[history], pay_arr[history]
        after = 3 if count[u] >= 4 else 0
        lo = times[after] if count[u] else np.datetime64(spec.start.isoformat(), "s")
        span = max(int((end - lo) / np.timedelta64(1, "s")) - 7200, 1)
        t0 = lo + np.timedelta64(int(rng.integers(60, span + 60)), "s")
        # where the user is at t0 (a traveller may be away): the place of the latest row before it
        where = int(np.searchsorted(times, t0, side="right")) - 1
        home = places[max(where, 0)] if count[u] else "Mumbai"
        base = {"user": u, "payment_method": "Credit Card", "product": "Smartphone", "category": "Electronics",
                "quantity": 1, "status": "success", "type": "purchase", "fraud_label": pattern,
                "fraud_incident": incident, "home": home, "behaviour": "", "delay": 0}

        def add(at: np.datetime64, amount: float, location: str, base: dict = base, **over: object) -> None:
            rows.append({**base, "ts": at, "amount": round(float(amount), 2), "location": location, **over})

        if pattern == "burst":
            # a bot buying gift cards one after the other: separate checkouts, not one basket
            at = t0
            for _ in range(int(rng.integers(5, 9))):
                add(at, rng.uniform(1_500, 9_000), home, product="Gift Card", category="Gift Cards")
                at = at + np.timedelta64(int(rng.integers(61, 150)), "s")
        elif pattern == "impossible_travel":
            # the victim's genuine purchase at home, then the fraudster abroad minutes later
            add(t0, rng.uniform(300, 3_000), home, fraud_label="", fraud_incident="", behaviour="ordinary")
            add(t0 + np.timedelta64(int(rng.integers(120, 1500)), "s"), rng.uniform(2_000, 20_000),
                str(rng.choice(FAR_CITIES)))
        elif pattern == "account_takeover":
            # a new city, a payment method the user never used, several times the usual amount
            used = set(places)
            fresh = [c for c in HOME_CITIES if c not in used] or ["Guwahati"]
            new_methods = [m for m in PAYMENT_METHODS if m not in set(methods)] or ["Wallet"]
            before = amount_arr[history][times < t0]
            usual = float(np.median(before)) if before.size else 1_000.0
            low = max(20_000.0, 4 * usual)
            add(t0, rng.uniform(low, 1.5 * low), str(rng.choice(fresh)), product="Laptop",
                payment_method=str(rng.choice(new_methods)))
        elif pattern == "high_amount":
            add(t0, rng.uniform(60_000, 300_000), home, product="Gold Jewellery", category="Jewellery")
        elif pattern == "refund_abuse":
            for i in range(int(rng.integers(3, 6))):
                add(t0 + np.timedelta64(int(i * rng.integers(600, 3600)), "s"), rng.uniform(2_000, 25_000), home,
                    type="refund")
        elif pattern == "card_testing":
            # tiny payments with stolen card numbers, most declined, one every 20 s to 2 min
            at = t0
            for _ in range(int(rng.integers(3, 7))):
                add(at, rng.uniform(1, 200), home, status="failed" if rng.random() < 0.7 else "success",
                    payment_method="Credit Card", product="Gift Card", category="Gift Cards")
                at = at + np.timedelta64(int(rng.integers(20, 120)), "s")
    return pd.DataFrame(rows)


def generate(spec: GeneratorSpec) -> pd.DataFrame:
    """The labelled transactions as a DataFrame in arrival order (event time, but for late rows), `spec.rows` rows."""
    spec.validate()
    rng = np.random.default_rng(spec.seed)
    # generate a full set of clean rows, add the behaviours and fraud, then trim ordinary rows:
    # incidents and behaviours vary in size, the total may not
    # the behaviours add rows: start with about as many as the total needs, a little more
    added = 2.5 * spec.checkout_share + spec.retry_share + spec.sale_share
    base = min(spec.rows, int(spec.rows / (1 + added) * 1.03) + 10)
    clean = _realistic(spec, _clean(spec, base, rng), rng)
    fraud = _inject(spec, clean, rng)
    excess = len(clean) + len(fraud) - spec.rows
    if excess > 0:
        # the victims' own histories stay whole: their fraud was shaped against them
        victims = fraud["user"].unique() if len(fraud) else []
        ordinary = np.flatnonzero((clean["behaviour"].to_numpy() == "ordinary")
                                  & ~clean["user"].isin(victims).to_numpy())
        drop = rng.choice(ordinary, size=min(excess, len(ordinary)), replace=False)
        clean = clean.drop(index=clean.index[drop])
    clean = _late(spec, clean, rng)
    df = pd.concat([clean, fraud], ignore_index=True).iloc[: spec.rows]
    df = df.sort_values(["ts", "user"], kind="stable").reset_index(drop=True)
    # ids in event-time order; the file in arrival order (a late row comes after later events)
    ids = [f"G{spec.seed}-{i:08d}" for i in range(len(df))]
    arrival = df["ts"].to_numpy() + df["delay"].to_numpy().astype("timedelta64[s]")
    order = np.lexsort((np.arange(len(df)), arrival))
    df = df.iloc[order].reset_index(drop=True)
    out = pd.DataFrame({
        "transaction_id": np.array(ids)[order],
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
        "behaviour": df["behaviour"],
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
