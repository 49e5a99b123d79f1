"""The clean traffic of a synthetic day, each row labelled in `behaviour`:

  ordinary             users with a home city, a product catalogue with prices and categories,
                       a payment-method mix, a daily traffic curve, some failed payments and refunds
  traveller            a flight to a city 1,000-1,500 km away, then ordinary purchases there,
                       three or more hours after the last one at home; one trip in four is abroad
                       (a flight's time plus one to three hours after the last purchase at home)
  multi_item_checkout  three or four items in the same minute, same payment method and place
  declined_retry       a declined payment, then the same amount paid a minute or two later
                       (half of the time with another of the user's payment methods)
  payday               payday purchases from the dear end of the catalogue
  sales_spike          an evening flash sale: many users buying within the same hour
  late_arrival         an ordinary row that reaches the pipeline a few minutes late (the file is
                       in arrival order; `timestamp` stays the event time)

`clean_day` draws the ordinary rows, `add_behaviours` shapes them, `delay_some` makes some late
(after the fraud is injected and the total trimmed: src/txnmon/synthetic/generator.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from txnmon.core import geo
from txnmon.synthetic.spec import (
    CATALOGUE,
    CATALOGUE_WEIGHTS,
    FAILED_RATE,
    FAR_CITIES,
    HOME_CITIES,
    HOME_WEIGHTS,
    HOURLY,
    PAYMENT_METHODS,
    PAYMENT_WEIGHTS,
    REFUND_RATE,
    GeneratorSpec,
    probabilities,
)


def clean_day(spec: GeneratorSpec, n: int, rng: np.random.Generator) -> pd.DataFrame:
    users = spec.users
    home = rng.choice(HOME_CITIES, size=users, p=probabilities(HOME_WEIGHTS))
    preferred_pay = rng.choice(len(PAYMENT_METHODS), size=users, p=probabilities(PAYMENT_WEIGHTS))
    activity = np.clip(rng.lognormal(0, 0.6, size=users), 0.2, 4)
    user = rng.choice(users, size=n, p=activity / activity.sum())

    day = rng.integers(0, spec.days, size=n)
    hour = rng.choice(24, size=n, p=probabilities(HOURLY))
    second = rng.integers(0, 3600, size=n)
    start = np.datetime64(spec.start.isoformat(), "s")
    ts = start + (day * 86400 + hour * 3600 + second).astype("timedelta64[s]")

    location = home[user]

    item = rng.choice(len(CATALOGUE), size=n, p=probabilities(CATALOGUE_WEIGHTS))
    price = np.array([c[2] for c in CATALOGUE], dtype=float)[item] * rng.uniform(0.9, 1.1, size=n)
    quantity = np.where(price < 5_000, rng.choice([1, 1, 1, 2, 3], size=n), 1)
    amount = np.round(price * quantity, 2)

    pay = np.where(rng.random(n) < 0.75, preferred_pay[user], rng.choice(len(PAYMENT_METHODS), size=n,
                                                                         p=probabilities(PAYMENT_WEIGHTS)))
    status = np.where(rng.random(n) < FAILED_RATE, "failed", "success")
    kind = np.where(rng.random(n) < REFUND_RATE, "refund", "purchase")
    return pd.DataFrame({
        "user": user, "ts": ts, "amount": amount, "payment_method": PAYMENT_METHODS[pay], "location": location,
        "product": np.array([c[0] for c in CATALOGUE])[item], "category": np.array([c[1] for c in CATALOGUE])[item],
        "quantity": quantity, "status": status, "type": kind, "fraud_label": "", "fraud_incident": "",
        "home": home[user], "behaviour": "ordinary", "delay": 0,
    })


# --- realistic clean behaviours: each takes the clean rows and returns them changed or extended ---

TRIPS_ABROAD = 0.25  # of travellers' trips
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
    abroad = rng.random(len(starts)) < TRIPS_ABROAD
    ts = df["ts"].to_numpy().copy()
    location = df["location"].to_numpy().copy()
    behaviour = df["behaviour"].to_numpy().copy()
    for first, end, travelling, overseas in zip(starts, ends, travels, abroad, strict=True):
        if not travelling or end - first < 2:
            continue
        split = int(rng.integers(first + 1, end))
        options = [str(c) for c in FAR_CITIES] if overseas else destinations.get(str(location[first]), [])
        if not options:
            continue
        there = options[int(rng.integers(len(options)))]
        gap = ts[split] - ts[split - 1]
        need = np.timedelta64(3 * 3600 + int(rng.integers(0, 2 * 3600)), "s")
        home, away = geo.lookup(str(location[split - 1])), geo.lookup(there)
        if overseas and home is not None and away is not None:
            flight = geo.distance_km(home, away) / 800 * 3600
            need = np.timedelta64(int(flight) + int(rng.integers(3600, 3 * 3600)), "s")
        if gap < need:
            ts[split:end] += need - gap
        location[split:end] = there
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
    item = rng.choice(len(CATALOGUE), size=len(items), p=probabilities(CATALOGUE_WEIGHTS))
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
    item = rng.choice(len(CATALOGUE), size=len(buys), p=probabilities(CATALOGUE_WEIGHTS))
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


def delay_some(spec: GeneratorSpec, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
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


def add_behaviours(spec: GeneratorSpec, clean: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The clean behaviours, in an order where each sees the one before (a traveller's checkout is away)."""
    for step in (_travel, _checkouts, _retries, _payday, _sales_spike):
        clean = step(spec, clean, rng)
    return clean

