"""What `txnmon generate` makes: the spec of a synthetic day, its fraud patterns and clean behaviours,
and the catalogue, cities and payment methods the rows are drawn from (src/txnmon/synthetic/generator.py
draws them; src/txnmon/synthetic/behaviours.py shapes the clean traffic).

The rule expected to catch each fraud pattern is the backtest's knowledge, not the generator's:
txnmon.core.backtest.PATTERN_RULES.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from txnmon.errors import UsageError

PATTERNS = ("burst", "impossible_travel", "account_takeover", "high_amount", "refund_abuse", "card_testing",
            "unusual_location")
PATTERN_WEIGHTS = np.array([0.17, 0.15, 0.13, 0.13, 0.13, 0.13, 0.16])
ROWS_PER_PATTERN = {"burst": 6.5, "impossible_travel": 1, "account_takeover": 1, "high_amount": 1,
                    "refund_abuse": 4, "card_testing": 4.5, "unusual_location": 1}
BEHAVIOURS = ("ordinary", "traveller", "multi_item_checkout", "declined_retry", "payday", "sales_spike",
              "late_arrival")

HOME_CITIES = np.array(["Mumbai", "Delhi", "Bangalore", "Chennai", "Kolkata", "Hyderabad", "Pune", "Ahmedabad",
                        "Jaipur", "Lucknow", "Surat", "Nagpur", "Indore", "Chandigarh", "Kochi"])
HOME_WEIGHTS = np.array([16, 16, 14, 9, 8, 9, 7, 5, 3, 3, 2, 2, 2, 2, 2], dtype=float)
# abroad, on other continents but for the Gulf and South-East Asia; the second half are not in
# the hand-kept table the gazetteer replaced (issue #28)
FAR_CITIES = np.array(["London", "Dubai", "Singapore", "New York", "Hong Kong", "Bangkok", "Paris", "Sydney",
                       "Lagos", "São Paulo", "Lisbon", "Dublin", "Athens", "Montreal", "Houston", "Santiago",
                       "Casablanca", "Accra", "Addis Ababa", "Perth"])
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


def probabilities(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()

