"""Business signals in event time: payment-method failure spikes, trending products and cities, new regions.

Input: the 5-minute event-time buckets of `kpi_signals_5min` (src/txnmon/core/rollups.py), one
`BucketCounts` per bucket; buckets with no document count as zero. `evaluate()` walks the closed
buckets in order, each exactly once, carrying a small `SignalState` (open episodes, cities seen,
where it stopped), and returns the episodes it opened, updated or cleared. The result depends only
on the buckets, never on the wall clock or on how the walk is split into runs: evaluating buckets
1..n in one call or in several gives the same episodes (the unit tests check it), so any replay
speed gives the same signals.

Decisions (all thresholds in `SignalConfig`, from Settings):

- payment_failure_spike (an operational alert, kept apart from fraud alerts): in one bucket a
  method's failure rate is at least `payment_factor` x its trailing baseline rate AND at least
  the baseline + `payment_min_increase`, with at least `payment_min_transactions` transactions and
  failures from at least `payment_min_failed_users` different users (a card tester is one user; a
  gateway outage fails everybody). It clears on the first bucket with enough transactions whose rate
  is back below the midpoint of the baseline and the opening threshold.
- trending_product / trending_city: buyers (the rollups give sales that no fraud rule flagged, so a
  fraudster's burst of orders is no trend) in the last `trend_window_buckets` buckets are at least `trend_factor` x the
  expected number and at least `trend_min_sales`. Expected = the key's share of all buyers in the
  `trend_baseline_buckets` before the window x all buyers in the window, so the daily traffic curve
  (a busier evening lifts every city) is no trend. Clears when buyers fall below the midpoint of the
  expected number (at the share frozen at opening) and the threshold.
- new_region: a city with no sales in any bucket before the window has at least
  `new_region_min_sales` buyers in one window. Clears when they fall below half of that.

The baseline is frozen when an episode opens, so an outage does not raise its own bar. Nothing is
decided until a full baseline of history exists (the first `baseline` buckets after the data starts
only teach the state which cities exist).
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

BUCKET = dt.timedelta(minutes=5)
PAYMENT_SPIKE = "payment_failure_spike"
TRENDING_PRODUCT = "trending_product"
TRENDING_CITY = "trending_city"
NEW_REGION = "new_region"
TREND_KINDS = (TRENDING_PRODUCT, TRENDING_CITY, NEW_REGION)


class SignalConfigError(ValueError):
    """A threshold is out of range (Settings turns it into a ConfigError naming the variable)."""


@dataclass(frozen=True)
class SignalConfig:
    payment_baseline_buckets: int = 12
    payment_factor: float = 4.0
    payment_min_increase: float = 0.15
    payment_min_transactions: int = 20
    payment_min_failed_users: int = 8
    trend_window_buckets: int = 3
    trend_baseline_buckets: int = 12
    trend_factor: float = 3.0
    trend_min_sales: int = 20
    new_region_min_sales: int = 10

    def __post_init__(self) -> None:
        problems = []
        if self.payment_baseline_buckets < 1 or self.trend_baseline_buckets < 1 or self.trend_window_buckets < 1:
            problems.append("window and baseline lengths must be at least 1 bucket")
        if self.payment_factor <= 1 or self.trend_factor <= 1:
            problems.append("factors must be above 1")
        if not 0 < self.payment_min_increase < 1:
            problems.append("the payment failure-rate increase must be between 0 and 1")
        if min(self.payment_min_transactions, self.payment_min_failed_users, self.trend_min_sales,
               self.new_region_min_sales) < 1:
            problems.append("minimum counts must be at least 1")
        if problems:
            raise SignalConfigError("; ".join(problems))

    @property
    def history_buckets(self) -> int:
        """How many buckets before the first one to evaluate each decision needs."""
        return max(self.payment_baseline_buckets, self.trend_baseline_buckets + self.trend_window_buckets)


@dataclass(frozen=True)
class BucketCounts:
    """One 5-minute bucket: per payment method (transactions, failed, users with a failure), per product
    and per city (sales, buyers): the successful purchases no fraud rule flagged, and the distinct users
    who made them in the bucket. The decisions take buyers: a four-item checkout is one buyer."""

    payment: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)
    products: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    locations: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> BucketCounts:
        """From a kpi_signals_5min document."""
        return cls(
            payment={str(p["payment_method"]): (int(p["transactions"]), int(p["failed_payments"]),
                                                int(p.get("failed_users", 0))) for p in doc.get("payment", [])},
            products={str(p["product"]): _sales_buyers(p) for p in doc.get("products", [])},
            locations={str(p["location"]): _sales_buyers(p) for p in doc.get("locations", [])})


def _sales_buyers(entry: Mapping[str, Any]) -> tuple[int, int]:
    # documents written before buyers were counted have sales only: each sale was then a buyer
    return int(entry["sales"]), int(entry.get("buyers", entry["sales"]))


EMPTY = BucketCounts()


@dataclass
class SignalState:
    """What the walk carries from one run to the next (stored as one document)."""

    next_bucket: dt.datetime | None = None  # the first bucket not evaluated yet
    data_start: dt.datetime | None = None  # the first bucket with data: decisions wait a full baseline after it
    open: dict[str, dict[str, Any]] = field(default_factory=dict)  # signal _id -> the open episode
    seen_cities: set[str] = field(default_factory=set)

    def to_document(self) -> dict[str, Any]:
        return {"next_bucket": self.next_bucket, "data_start": self.data_start, "open": list(self.open.values()),
                "seen_cities": sorted(self.seen_cities)}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any] | None) -> SignalState:
        if not doc:
            return cls()
        return cls(next_bucket=_utc(doc.get("next_bucket")), data_start=_utc(doc.get("data_start")),
                   open={e["_id"]: {**e, "opened_at": _utc(e["opened_at"])} for e in doc.get("open", [])},
                   seen_cities=set(doc.get("seen_cities", [])))


def _utc(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def bucket_start(at: dt.datetime) -> dt.datetime:
    """The 5-minute bucket `at` falls in."""
    at = at.astimezone(dt.UTC)
    return at.replace(minute=at.minute - at.minute % 5, second=0, microsecond=0)


def signal_id(kind: str, key: str, opened_at: dt.datetime) -> str:
    """`kind|key|opened bucket`; the key percent-escaped like the kpi_* `_id`s, so it cannot collide."""
    escaped = key.replace("%", "%25").replace("|", "%7C")
    return f"{kind}|{escaped}|{opened_at:%Y-%m-%dT%H:%M}"


@dataclass
class Evaluation:
    state: SignalState
    changed: list[dict[str, Any]]  # episodes opened, updated or cleared (whole documents, written by _id)
    evaluated: int  # buckets walked


def evaluate(state: SignalState, buckets: Mapping[dt.datetime, BucketCounts], until: dt.datetime,
             config: SignalConfig) -> Evaluation:
    """Walk every closed bucket from `state.next_bucket` (or the first bucket with data) up to, not
    including, `until`. `buckets` must hold every bucket with data from `config.history_buckets`
    before `state.next_bucket` on (missing ones are empty)."""
    state = SignalState(state.next_bucket, state.data_start, dict(state.open), set(state.seen_cities))
    if state.next_bucket is None:
        with_data = sorted(b for b, c in buckets.items() if c.payment or c.products or c.locations)
        if not with_data:
            return Evaluation(state, [], 0)
        state.next_bucket = state.data_start = with_data[0]
    until = bucket_start(until)
    changed: dict[str, dict[str, Any]] = {}
    history = config.history_buckets
    # a sliding window of the previous `history` buckets
    past: deque[BucketCounts] = deque(
        (buckets.get(state.next_bucket - BUCKET * i, EMPTY) for i in range(history, 0, -1)), maxlen=history)
    walked = 0
    at = state.next_bucket
    while at < until:
        now = buckets.get(at, EMPTY)
        warmed = state.data_start is not None and at - state.data_start >= BUCKET * history
        if len(past) >= config.trend_window_buckets:  # the bucket that just left the trend window
            state.seen_cities.update(k for k, (n, _) in past[-config.trend_window_buckets].locations.items() if n)
        if warmed:
            for episode in _payment(state, at, now, past, config) + _trends(state, at, now, past, config):
                changed[episode["_id"]] = episode
        past.append(now)
        at += BUCKET
        walked += 1
    state.next_bucket = at
    return Evaluation(state, list(changed.values()), walked)


def _recent(past: deque[BucketCounts], n: int, skip: int = 0) -> list[BucketCounts]:
    """The `n` buckets before the newest `skip` ones of `past` (oldest first)."""
    items = list(past)
    end = len(items) - skip
    return items[max(end - n, 0):end]


def _payment(state: SignalState, at: dt.datetime, now: BucketCounts, past: deque[BucketCounts],
             config: SignalConfig) -> list[dict[str, Any]]:
    out = []
    trailing = _recent(past, config.payment_baseline_buckets)
    methods = set(now.payment) | {e["key"] for e in state.open.values() if e["kind"] == PAYMENT_SPIKE}
    for method in sorted(methods):
        n, failed, failed_users = now.payment.get(method, (0, 0, 0))
        episode = _open_episode(state, PAYMENT_SPIKE, method)
        rate = failed / n if n else 0.0
        if episode is not None:
            if n >= config.payment_min_transactions and rate <= episode["clear_below"]:
                out.append(_clear(state, episode, at))
            elif n:
                episode.update(buckets=episode["buckets"] + 1, transactions=episode["transactions"] + n,
                               failed_payments=episode["failed_payments"] + failed,
                               peak_rate=max(episode["peak_rate"], rate))
                out.append(dict(episode))
            continue
        base_n = sum(b.payment.get(method, (0, 0, 0))[0] for b in trailing)
        base_failed = sum(b.payment.get(method, (0, 0, 0))[1] for b in trailing)
        baseline = base_failed / base_n if base_n else 0.0
        threshold = max(baseline * config.payment_factor, baseline + config.payment_min_increase)
        if n >= config.payment_min_transactions and failed_users >= config.payment_min_failed_users \
                and rate >= threshold:
            episode = {
                "_id": signal_id(PAYMENT_SPIKE, method, at), "kind": PAYMENT_SPIKE, "key": method,
                "payment_method": method, "status": "open", "severity": "high", "opened_at": at, "cleared_at": None,
                "baseline_rate": baseline, "threshold_rate": threshold, "clear_below": (baseline + threshold) / 2,
                "opening_rate": rate, "peak_rate": rate, "buckets": 1, "transactions": n, "failed_payments": failed,
                "failed_users_at_open": failed_users,
                "reason": (f"{method}: {failed} of {n} payments failed ({rate:.0%}) in the 5 minutes from "
                           f"{at:%Y-%m-%d %H:%M} UTC, {failed_users} users affected; trailing baseline "
                           f"{baseline:.1%}"),
            }
            state.open[episode["_id"]] = episode
            out.append(dict(episode))
    return out


def _total(buckets: list[BucketCounts], dimension: str, key: str | None = None) -> tuple[int, int]:
    """(sales, buyers) of one key, or of every key, over the buckets."""
    sales = buyers = 0
    for c in buckets:
        counts = getattr(c, dimension)
        if key is None:
            for n, b in counts.values():
                sales += n
                buyers += b
        elif key in counts:
            n, b = counts[key]
            sales += n
            buyers += b
    return sales, buyers


def _trends(state: SignalState, at: dt.datetime, now: BucketCounts, past: deque[BucketCounts],
            config: SignalConfig) -> list[dict[str, Any]]:
    """Buyers decide (kpi_signals_5min: sales no fraud rule flagged); the
    baseline is the key's share of all buyers before the window applied to the window's buyers, so the
    daily traffic curve (a busier evening) is no trend either."""
    out = []
    w, b = config.trend_window_buckets, config.trend_baseline_buckets
    window = [*_recent(past, w - 1), now]
    baseline_buckets = _recent(past, b, skip=w - 1)
    for dimension, kind in (("products", TRENDING_PRODUCT), ("locations", TRENDING_CITY)):
        window_all = _total(window, dimension)[1]
        baseline_all = _total(baseline_buckets, dimension)[1]
        keys = {k for c in window for k in getattr(c, dimension)} | {
            e["key"] for e in state.open.values() if e.get("dimension") == dimension}
        for key in sorted(keys):
            sales, buyers = _total(window, dimension, key)
            new_city = kind == TRENDING_CITY and key not in state.seen_cities
            if kind == TRENDING_CITY:
                episode = _open_episode(state, NEW_REGION, key) or _open_episode(state, TRENDING_CITY, key)
            else:
                episode = _open_episode(state, kind, key)
            if episode is not None:
                expected = episode["baseline_share"] * window_all
                threshold = max(expected * config.trend_factor, float(
                    config.new_region_min_sales if episode["kind"] == NEW_REGION else config.trend_min_sales))
                if buyers < (expected + threshold) / 2:
                    out.append(_clear(state, episode, at))
                else:
                    episode.update(peak_window_buyers=max(episode["peak_window_buyers"], buyers),
                                   buckets=episode["buckets"] + 1)
                    out.append(dict(episode))
                continue
            if new_city:
                if buyers >= config.new_region_min_sales:
                    out.append(_open_trend(state, NEW_REGION, dimension, key, at, w, (sales, buyers), 0.0, 0.0,
                                           float(config.new_region_min_sales)))
                continue
            share = _total(baseline_buckets, dimension, key)[1] / baseline_all if baseline_all else 0.0
            expected = share * window_all
            threshold = max(expected * config.trend_factor, float(config.trend_min_sales))
            if share and buyers >= threshold:
                out.append(_open_trend(state, kind, dimension, key, at, w, (sales, buyers), share, expected,
                                       threshold))
    return out


def _open_trend(state: SignalState, kind: str, dimension: str, key: str, at: dt.datetime, window: int,
                counts: tuple[int, int], share: float, expected: float, threshold: float) -> dict[str, Any]:
    sales, buyers = counts
    field_name = "product" if dimension == "products" else "location"
    what = {TRENDING_PRODUCT: "has", TRENDING_CITY: "has", NEW_REGION: "(no sales before) has"}[kind]
    episode = {
        "_id": signal_id(kind, key, at), "kind": kind, "key": key, "dimension": dimension, field_name: key,
        "status": "open", "opened_at": at, "cleared_at": None, "window_sales": sales, "window_buyers": buyers,
        "baseline_share": share, "expected_buyers": expected, "threshold": threshold,
        "factor": None if expected == 0 else buyers / expected, "peak_window_buyers": buyers, "buckets": 1,
        "reason": f"{key} {what} {buyers} sales in the {window * 5}-minute window ending "
                  f"{at + BUCKET:%Y-%m-%d %H:%M} UTC; expected {expected:.1f} from its trailing share",
    }
    state.open[episode["_id"]] = episode
    return dict(episode)


def _open_episode(state: SignalState, kind: str, key: str) -> dict[str, Any] | None:
    for episode in state.open.values():
        if episode["kind"] == kind and episode["key"] == key:
            return episode
    return None


def _clear(state: SignalState, episode: dict[str, Any], at: dt.datetime) -> dict[str, Any]:
    del state.open[episode["_id"]]
    return {**episode, "status": "cleared", "cleared_at": at}


def buckets_from_documents(docs: Iterable[Mapping[str, Any]]) -> dict[dt.datetime, BucketCounts]:
    return {_utc(d["bucket"]): BucketCounts.from_document(d) for d in docs}
