"""Business events injected into generated data: a payment-gateway outage, a product spike, a new region.

`txnmon generate --outage UPI@12:00/30 --product-spike "Air Fryer@14:00/60" --new-region Bhopal@17:00/60`
applies them to the generator's rows (src/txnmon/synthetic/generator.py), each labelled in the column
`business_event` so tests and demos know the ground truth:

  gateway_outage  METHOD@HH:MM/MINUTES     that method's payments fail (OUTAGE_FAILURE_RATE of them)
  product_spike   PRODUCT@HH:MM/MINUTES    SPIKE_ROWS extra purchases of the product, spread over the span
  new_region      CITY@HH:MM/MINUTES       REGION_ROWS purchases by new customers in a city nobody used

Times are on the first generated day (UTC). Kept apart from the fraud patterns of generator.py: the
two are applied one after the other and never share code. The same seed gives the same rows.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from txnmon.synthetic.spec import (
    CATALOGUE,
    HOME_CITIES,
    HOME_WEIGHTS,
    PAYMENT_METHODS,
    PAYMENT_WEIGHTS,
    GeneratorError,
)

KINDS = ("gateway_outage", "product_spike", "new_region")
FLAGS = {"gateway_outage": "--outage", "product_spike": "--product-spike", "new_region": "--new-region"}
OUTAGE_FAILURE_RATE = 0.6
SPIKE_ROWS = 200
REGION_ROWS = 80
_SPEC = re.compile(r"^(?P<name>[^@]+)@(?P<hh>\d{1,2}):(?P<mm>\d{2})/(?P<minutes>\d{1,4})$")


@dataclass(frozen=True)
class BusinessEvent:
    kind: str  # one of KINDS
    name: str  # the payment method, product or city
    start: dt.datetime
    minutes: int
    rows: int = 0  # extra rows (spike, region); 0 for an outage, which changes existing rows

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(minutes=self.minutes)


def parse_event(kind: str, text: str, day: dt.date, rows: int | None = None) -> BusinessEvent:
    """`NAME@HH:MM/MINUTES` on `day`; a clear GeneratorError otherwise."""
    if kind not in KINDS:
        raise GeneratorError(f"unknown business event {kind!r} (one of {', '.join(KINDS)})")
    m = _SPEC.match(text.strip())
    if not m or not m["name"].strip():
        raise GeneratorError(f"{FLAGS[kind]}: expected NAME@HH:MM/MINUTES, e.g. UPI@12:00/30, "
                             f"got {text!r}")
    hh, mm, minutes = int(m["hh"]), int(m["mm"]), int(m["minutes"])
    if hh > 23 or mm > 59 or not 1 <= minutes <= 24 * 60:
        raise GeneratorError(f"{FLAGS[kind]}: time must be 00:00-23:59 and the span 1-1440 minutes, "
                             f"got {text!r}")
    default = {"gateway_outage": 0, "product_spike": SPIKE_ROWS, "new_region": REGION_ROWS}[kind]
    start = dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=dt.UTC)
    return BusinessEvent(kind, m["name"].strip(), start, minutes, default if rows is None else rows)


def inject(df: pd.DataFrame, events: list[BusinessEvent], seed: int = 42) -> pd.DataFrame:
    """The generator's rows with the events applied, sorted by time, `business_event` labelling them."""
    rng = np.random.default_rng([seed, 16])
    out = df.copy()
    out["business_event"] = ""
    added: list[pd.DataFrame] = []
    ts = pd.to_datetime(out["timestamp"], utc=True)
    for n, event in enumerate(events):
        if event.kind == "gateway_outage":
            hit = (out["payment_method"] == event.name) & (ts >= event.start) & (ts < event.end)
            fails = hit & (rng.random(len(out)) < OUTAGE_FAILURE_RATE)
            out.loc[fails, "status"] = "failed"
            out.loc[fails, "business_event"] = event.kind
            if not hit.any():
                raise GeneratorError(f"--outage: no {event.name} payments between {event.start:%H:%M} and "
                                     f"{event.end:%H:%M} in the generated data (methods: "
                                     f"{', '.join(sorted(out['payment_method'].unique()))})")
        else:
            added.append(_extra_rows(event, out, rng, seed, n))
    if added:
        out = pd.concat([out, *added], ignore_index=True)
    return out.sort_values(["timestamp", "transaction_id"], kind="stable").reset_index(drop=True)


def _extra_rows(event: BusinessEvent, df: pd.DataFrame, rng: np.random.Generator, seed: int, n: int) -> pd.DataFrame:
    k = event.rows
    offsets = np.sort(rng.integers(0, event.minutes * 60, size=k))
    times = [(event.start + dt.timedelta(seconds=int(s))).strftime("%Y-%m-%dT%H:%M:%SZ") for s in offsets]
    prices = {p: (c, price) for p, c, price in CATALOGUE}
    if event.kind == "product_spike":
        category, price = prices.get(event.name, ("Other", 1_000))
        products = [event.name] * k
        categories = [category] * k
        amounts = np.round(price * rng.uniform(0.9, 1.1, size=k), 2)
        users = rng.choice(df["user_id"].unique(), size=k)
        locations = rng.choice(HOME_CITIES, size=k, p=HOME_WEIGHTS / HOME_WEIGHTS.sum())
    else:  # new_region: new customers in a city nobody bought in
        if (df["location"] == event.name).any():
            raise GeneratorError(f"--new-region: {event.name} already has sales in the generated data; "
                                 "choose a city nobody uses (e.g. Bhopal, Patna, Coimbatore)")
        items = rng.integers(0, len(CATALOGUE), size=k)
        products = [CATALOGUE[i][0] for i in items]
        categories = [CATALOGUE[i][1] for i in items]
        amounts = np.round(np.array([CATALOGUE[i][2] for i in items]) * rng.uniform(0.9, 1.1, size=k), 2)
        users = [f"R{seed}-{n}-{i % max(k // 2, 1):05d}" for i in range(k)]  # about two orders each
        locations = [event.name] * k
    pay = rng.choice(PAYMENT_METHODS, size=k, p=PAYMENT_WEIGHTS / PAYMENT_WEIGHTS.sum())
    extra = pd.DataFrame({
        "transaction_id": [f"B{seed}-{n}-{i:06d}" for i in range(k)], "user_id": users, "amount": amounts,
        "payment_method": pay, "location": locations, "timestamp": times, "product": products,
        "category": categories, "quantity": 1, "currency": "INR", "status": "success", "type": "purchase",
        "fraud_label": "", "fraud_incident": "", "business_event": event.kind,
    })
    return extra[[c for c in df.columns if c in extra.columns]]
