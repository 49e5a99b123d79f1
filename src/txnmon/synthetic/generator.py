"""Synthetic, labelled e-commerce transactions: `txnmon generate`.

Clean traffic behaves like real shoppers, each row labelled in `behaviour` (ordinary, traveller,
multi_item_checkout, declined_retry, payday, sales_spike, late_arrival: src/txnmon/synthetic/behaviours.py);
the spec, the patterns and the catalogue are in src/txnmon/synthetic/spec.py.

Injected fraud, labelled in `fraud_label` and grouped by `fraud_incident`:

  burst             5-8 gift-card purchases by one user, one every minute or two
  impossible_travel a purchase abroad minutes to three hours after one at home (faster than a plane)
  account_takeover  a big purchase in a city the user never used, with a payment method never used
  unusual_location  the seed report's example: a purchase far above the user's usual, abroad, with the
                    user's usual payment method, hours after the last purchase at home (victims with
                    a single earlier purchase too)
  high_amount       one purchase far above the user's usual basket
  refund_abuse      3-5 refunds within a few hours
  card_testing      3-6 tiny payments within minutes, most of them declined

The same seed gives the same file, byte for byte. Vectorised with numpy where it matters: a
million rows in seconds, so detection quality can be measured on realistic volumes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from txnmon.core import geo
from txnmon.synthetic.behaviours import add_behaviours, clean_day, delay_some
from txnmon.synthetic.spec import (
    BEHAVIOUR_SHARES,
    BEHAVIOURS,
    FAR_CITIES,
    HOME_CITIES,
    PATTERN_WEIGHTS,
    PATTERNS,
    PAYMENT_METHODS,
    ROWS_PER_PATTERN,
    GeneratorError,
    GeneratorSpec,
    parse_behaviour_shares,
    probabilities,
)

# the spec's names callers take from here
__all__ = ["BEHAVIOURS", "BEHAVIOUR_SHARES", "PATTERNS", "GeneratorError", "GeneratorSpec", "generate",
           "parse_behaviour_shares", "write_csv"]


def _inject(spec: GeneratorSpec, clean: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    target_rows = round(spec.rows * spec.fraud_rate)
    if target_rows == 0:
        return clean.iloc[:0].copy()
    mean_rows = float(np.dot(probabilities(PATTERN_WEIGHTS), [ROWS_PER_PATTERN[p] for p in PATTERNS]))
    incidents = max(1, round(target_rows / mean_rows))
    kinds = rng.choice(len(PATTERNS), size=incidents, p=probabilities(PATTERN_WEIGHTS))

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
    # the seed report's case needs only one earlier purchase: what there is must be judged
    thin = np.flatnonzero((count >= 2) & ~travelling)
    if thin.size == 0:
        thin = eligible
    end = np.datetime64(spec.start.isoformat(), "s") + np.timedelta64(spec.days * 86400, "s")

    rows: list[dict] = []
    victims: list[int] = []
    for n_incident, k in enumerate(kinds):
        pattern = PATTERNS[k]
        incident = f"F{spec.seed}-{n_incident:06d}"
        # one incident per victim while victims last: a second attack on a taken-over account
        # would meet the first one's traces (its city, its payment method) as "usual"
        pool = thin if pattern == "unusual_location" else eligible
        fresh_victims = np.setdiff1d(pool, victims) if len(victims) < pool.size else pool
        u = int(rng.choice(fresh_victims))
        victims.append(u)
        history = slice(first[u], first[u] + count[u])
        times, places, methods = ts_arr[history], loc_arr[history], pay_arr[history]
        after = 3 if count[u] >= 4 and pattern != "unusual_location" else 0
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
            abroad = str(rng.choice(FAR_CITIES))
            # up to three hours later, but never as late as a plane could have made it
            longest = min(3 * 3600, int(0.8 * _flight_s(home, abroad, 900)) if _flight_s(home, abroad, 900) else 1500)
            add(t0 + np.timedelta64(int(rng.integers(120, max(longest, 121))), "s"), rng.uniform(2_000, 20_000),
                abroad)
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
        elif pattern == "unusual_location":
            abroad = str(rng.choice(FAR_CITIES))
            # hours after the user's last purchase: long enough for a flight, so no travel signal helps
            need = np.timedelta64(int((_flight_s(home, abroad, 800) or 6 * 3600) + rng.integers(3600, 5 * 3600)), "s")
            for _ in range(20):
                last = int(np.searchsorted(times, t0, side="right")) - 1
                if last < 0 or t0 - times[last] >= need:
                    break
                t0 = times[last] + need
            before = amount_arr[history][times < t0]
            usual = float(np.median(before)) if before.size else 1_000.0
            low = max(35_000.0, 4 * usual)
            own = methods[times < t0]
            usual_method = str(pd.Series(own).mode().sort_values().iloc[0]) if own.size else "UPI"
            add(t0, rng.uniform(low, 1.3 * low), abroad, product="Laptop", payment_method=usual_method)
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


def _flight_s(a: str, b: str, kmh: float) -> float | None:
    """Seconds to fly between two cities at `kmh`; None if the gazetteer lacks one."""
    ca, cb = geo.lookup(a), geo.lookup(b)
    return None if ca is None or cb is None else geo.distance_km(ca, cb) / kmh * 3600


def generate(spec: GeneratorSpec) -> pd.DataFrame:
    """The labelled transactions as a DataFrame in arrival order (event time, but for late rows), `spec.rows` rows."""
    spec.validate()
    rng = np.random.default_rng(spec.seed)
    # generate a full set of clean rows, add the behaviours and fraud, then trim ordinary rows:
    # incidents and behaviours vary in size, the total may not
    # the behaviours add rows: start with about as many as the total needs, a little more
    added = 2.5 * spec.checkout_share + spec.retry_share + spec.sale_share
    base = min(spec.rows, int(spec.rows / (1 + added) * 1.03) + 10)
    clean = add_behaviours(spec, clean_day(spec, base, rng), rng)
    fraud = _inject(spec, clean, rng)
    excess = len(clean) + len(fraud) - spec.rows
    if excess > 0:
        # the victims' own histories stay whole: their fraud was shaped against them
        victims = fraud["user"].unique() if len(fraud) else []
        ordinary = np.flatnonzero((clean["behaviour"].to_numpy() == "ordinary")
                                  & ~clean["user"].isin(victims).to_numpy())
        drop = rng.choice(ordinary, size=min(excess, len(ordinary)), replace=False)
        clean = clean.drop(index=clean.index[drop])
    clean = delay_some(spec, clean, rng)
    fraud = delay_some(spec, fraud, rng) if len(fraud) else fraud  # an attack's rows arrive late too
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
