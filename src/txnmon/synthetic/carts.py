"""Cart events of a generated day, coherent with its transactions (`txnmon generate --events carts`).

Every purchase in the transactions file (successful or failed; not refunds) ends a cart of its user:
`cart_created` some minutes before, `item_added` events whose price x quantity add up to the
purchase's amount to the cent (sometimes another product is added and removed again), then
`checkout_started` 10-90 s before the transaction, carrying its `transaction_id`. These carts are
labelled `label=purchased`.

Carts with no transaction are labelled `label=abandoned`: they end after their items (or, one in three,
after `checkout_started`), and their user makes no transaction for ABANDON_QUIET after the cart's last
event, nor for CART_GAP before its first, so any abandonment timeout up to ABANDON_QUIET labels them the
same way. Abandoners come from a small pool of users (some abandon repeatedly); some abandoned carts
follow a failed payment of their user within minutes (`scenario=after_failed_payment`).

The transactions are not changed: the events are drawn from them with a random stream of their own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from txnmon.synthetic.spec import CATALOGUE, CATALOGUE_WEIGHTS, probabilities

ABANDON_SHARE = 0.3  # abandoned carts per purchase
ABANDONER_SHARE = 0.2  # of users: the pool abandoned carts are drawn from
AFTER_FAILED_SHARE = 0.5  # of failed payments with room for it: an abandoned cart follows
ABANDON_QUIET = 2 * 3600  # seconds
CART_GAP = 30 * 60
COLUMNS = ["event_id", "event_type", "user_id", "cart_id", "product_id", "quantity", "price", "timestamp",
           "currency", "source", "transaction_id", "label", "scenario"]
_PRODUCTS = np.array([c[0] for c in CATALOGUE])
_PRICES = np.array([c[2] for c in CATALOGUE], dtype=float)
_CUMULATIVE = np.cumsum(probabilities(CATALOGUE_WEIGHTS))  # rng.choice with p= is slow one draw at a time


def _seconds(timestamps: pd.Series) -> np.ndarray:
    """ISO UTC texts as whole seconds since the epoch (times are ints here: the loops stay fast)."""
    return pd.to_datetime(timestamps, utc=True).dt.tz_localize(None).to_numpy().astype("datetime64[s]").astype(np.int64)


def _cents(amount: float) -> int:
    return round(amount * 100)


def _items(product: str, quantity: int, amount: float) -> list[tuple[str, int, float]]:
    """Lines whose price x quantity add up to `amount` exactly: one line, or two when the amount does
    not split into equal prices to the cent (the last unit carries the remainder)."""
    total, quantity = _cents(amount), max(int(quantity), 1)
    unit, rest = divmod(total, quantity)
    if rest == 0:
        return [(product, quantity, unit / 100)]
    return [(product, quantity - 1, unit / 100), (product, 1, (total - unit * (quantity - 1)) / 100)]


class _Carts:
    """The rows being built, one list per column, and the day's users' transaction times."""

    def __init__(self, tx: pd.DataFrame, seed: int, rng: np.random.Generator) -> None:
        self.rows: list[tuple] = []
        self.rng = rng
        self.seed = seed
        self.n_carts = 0
        times = pd.Series(_seconds(tx["timestamp"]), index=tx.index)
        self.by_user = {user: np.sort(group.to_numpy()) for user, group in times.groupby(tx["user_id"])}

    def cart_id(self) -> str:
        self.n_carts += 1
        return f"K{self.seed}-{self.n_carts:08d}"

    def add(self, at: int, kind: str, user: str, cart: str, label: str, product: str = "",
            quantity: int | None = None, price: float | None = None, transaction_id: str = "",
            scenario: str = "") -> None:
        self.rows.append((at, kind, user, cart, product, quantity, price, transaction_id, label, scenario))

    def quiet(self, user: str, first: int, last: int, after_failed: bool = False) -> bool:
        """No transaction of `user` from CART_GAP before `first` (not asked after a failed payment, which
        is the point) to ABANDON_QUIET after `last`."""
        times = self.by_user.get(user)
        if times is None:
            return True
        lo = first if after_failed else first - CART_GAP
        i = int(np.searchsorted(times, lo, "left"))
        return i == len(times) or times[i] > last + ABANDON_QUIET

    def product(self) -> int:
        return int(np.searchsorted(_CUMULATIVE, self.rng.random() * _CUMULATIVE[-1], "right"))

    def items(self, at: int, end: int, user: str, cart: str, label: str,
              lines: list[tuple[str, int, float]], scenario: str = "") -> None:
        """The lines added between `at` and `end`, sometimes one more product added and removed."""
        span = max(end - at, 2)
        steps = sorted(self.rng.integers(1, span, size=len(lines) + 2).tolist())
        for (product, quantity, price), step in zip(lines, steps, strict=False):
            self.add(at + step, "item_added", user, cart, label, product, quantity, price, scenario=scenario)
        if self.rng.random() < 0.2:  # a second thought: added, then taken out again
            k = self.product()
            price = round(float(_PRICES[k] * self.rng.uniform(0.9, 1.1)), 2)
            self.add(at + steps[-2], "item_added", user, cart, label, str(_PRODUCTS[k]), 1, price, scenario=scenario)
            self.add(at + steps[-1], "item_removed", user, cart, label, str(_PRODUCTS[k]), 1, price,
                     scenario=scenario)


def _purchased(carts: _Carts, tx: pd.DataFrame, day_start: int) -> None:
    rng = carts.rng
    purchases = tx[tx["type"] == "purchase"]
    times = _seconds(purchases["timestamp"]).tolist()
    for row, paid in zip(purchases.itertuples(index=False), times, strict=True):
        checkout = paid - int(rng.integers(10, 91))
        # a cart a few minutes old, not from before the day (the file is that day's) unless the purchase
        # is in its first minute: a cart always has a minute for its items
        created = min(max(checkout - int(rng.integers(120, 1800)), day_start), checkout - 60)
        cart = carts.cart_id()
        carts.add(created, "cart_created", row.user_id, cart, "purchased")
        carts.items(created, checkout, row.user_id, cart, "purchased",
                    _items(row.product, row.quantity, float(row.amount)))
        carts.add(checkout, "checkout_started", row.user_id, cart, "purchased", transaction_id=row.transaction_id)


def _abandon(carts: _Carts, user: str, first: int, scenario: str = "") -> bool:
    rng = carts.rng
    length = int(rng.integers(120, 1500))
    if not carts.quiet(user, first, first + length, after_failed=bool(scenario)):
        return False
    cart = carts.cart_id()
    n = int(rng.integers(1, 4))
    picks = [carts.product() for _ in range(n)]
    lines = [(str(_PRODUCTS[k]), 1 + int(rng.random() < 1 / 3), round(float(_PRICES[k] * rng.uniform(0.9, 1.1)), 2))
             for k in picks]
    checkout = rng.random() < 1 / 3
    carts.add(first, "cart_created", user, cart, "abandoned", scenario=scenario)
    end = first + length - int(checkout)
    carts.items(first, end, user, cart, "abandoned", lines, scenario)
    if checkout:
        carts.add(first + length, "checkout_started", user, cart, "abandoned", scenario=scenario)
    return True


def cart_events(tx: pd.DataFrame, *, seed: int, start: np.datetime64, days: int) -> pd.DataFrame:
    """The cart events of the transactions `tx` (a `generate` frame) in event-time order."""
    rng = np.random.default_rng([seed, 31, 1])
    carts = _Carts(tx, seed, rng)
    day_start = int(start.astype("datetime64[s]").astype(np.int64))
    _purchased(carts, tx, day_start)
    end_s = days * 86400 - 1800
    failed = tx[(tx["status"] == "failed") & (tx["type"] == "purchase")]
    for user, at in zip(failed["user_id"], _seconds(failed["timestamp"]).tolist(), strict=True):
        if rng.random() < AFTER_FAILED_SHARE:
            _abandon(carts, user, at + int(rng.integers(120, 900)), "after_failed_payment")
    users = np.unique(tx["user_id"].to_numpy())
    pool = rng.choice(users, size=max(1, int(len(users) * ABANDONER_SHARE)), replace=False) if len(users) else users
    wanted = round(ABANDON_SHARE * int((tx["type"] == "purchase").sum()))
    made = tries = 0
    while made < wanted and tries < wanted * 5 and len(pool):
        tries += 1
        made += _abandon(carts, str(pool[int(rng.integers(len(pool)))]), day_start + int(rng.integers(0, end_s)))
    return _frame(carts, seed)


def _frame(carts: _Carts, seed: int) -> pd.DataFrame:
    df = pd.DataFrame(carts.rows, columns=["ts", "event_type", "user_id", "cart_id", "product_id", "quantity",
                                           "price", "transaction_id", "label", "scenario"])
    rank = {"cart_created": 0, "item_added": 1, "item_removed": 2, "checkout_started": 3}
    df = df.assign(_rank=df["event_type"].map(rank)).sort_values(["ts", "cart_id", "_rank"], kind="stable")
    df = df.reset_index(drop=True)
    df["event_id"] = [f"E{seed}-{i:09d}" for i in range(len(df))]
    df["timestamp"] = pd.to_datetime(df["ts"], unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    df["quantity"] = df["quantity"].astype("Int64")
    df["currency"] = "INR"
    df["source"] = "web"
    return df[COLUMNS]
