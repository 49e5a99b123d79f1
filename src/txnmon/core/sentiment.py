"""Review sentiment per product and hour, and the drop alerts, decided in event time.

Each review carries a compound sentiment score (-1 .. +1, scored once by the job through
src/txnmon/adapters/sentiment.py). Per event-time hour and product the walk keeps the count, the sum
of ratings, the sum of scores and the negative reviews (`HourStats`; the BI rollup kpi_sentiment_hour
is these with their means). At the end of every closed hour `e` it compares, per product,

- recent: the reviews of the last `window_hours` ([e - window, e)), and
- baseline: the `baseline_hours` before them ([e - window - baseline, e - window)),

and opens a `sentiment_drop` episode when both hold at least `min_reviews` reviews and the recent
mean score is at least `drop` below the baseline's. The episode stays open (one alert) while the
gap stays at least half of `drop` with enough reviews on both sides, so a gap wavering around the
threshold raises one alert, not one per hour.

Pure and deterministic in event time: sums are `math.fsum` (correctly rounded, so the order in
which reviews or hours are added changes nothing) and every hour is decided once, in order, from
the state the previous hour left. Walking [a, c) at once or as [a, b) then [b, c) gives the same
documents (tests/unit/core/test_sentiment.py checks it with Hypothesis).
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["HOUR", "NEGATIVE_AT", "SENTIMENT_DROP", "HourStats", "SentimentConfig", "SentimentState",
           "WalkResult", "hour_start", "hour_stats", "score_document", "walk"]

HOUR = dt.timedelta(hours=1)
NEGATIVE_AT = -0.05  # VADER's own cut: a compound score at or below it is a negative text
SENTIMENT_DROP = "sentiment_drop"  # the ops_alerts kind
DIGITS = 4  # means shown in documents; the sums stay exact


def hour_start(at: dt.datetime) -> dt.datetime:
    if at.tzinfo is None:  # stored datetimes are UTC
        at = at.replace(tzinfo=dt.UTC)
    return at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class SentimentConfig:
    window_hours: int = 24
    baseline_hours: int = 7 * 24
    min_reviews: int = 10
    drop: float = 0.4

    @property
    def history(self) -> dt.timedelta:
        """How far before the first hour walked the walk must see: the recent window and the baseline."""
        return (self.window_hours + self.baseline_hours) * HOUR


def score_document(review: Mapping[str, Any], sentiment: float, scorer: str) -> dict[str, Any]:
    """A review's stored score (`review_scores`, `_id` = the review's id): what the walk reads."""
    return {"_id": review["_id"], "product_id": review["product_id"], "event_time": review["event_time"],
            "rating": int(review["rating"]), "sentiment": float(sentiment), "scorer": scorer}


@dataclass(frozen=True)
class HourStats:
    """One product's reviews in one event-time hour."""

    hour: dt.datetime
    product_id: str
    reviews: int
    rating_sum: int
    sentiment_sum: float
    negative: int

    @property
    def _id(self) -> str:
        # the hour has a fixed width, so whatever the product id holds, the _id is unambiguous
        return f"{self.hour:%Y-%m-%dT%H}|{self.product_id}"

    def to_document(self) -> dict[str, Any]:
        """The kpi_sentiment_hour document: the exact sums (the walk reads them back) and the means for BI."""
        n = self.reviews
        return {"_id": self._id, "hour": self.hour, "product_id": self.product_id, "reviews": n,
                "rating_sum": self.rating_sum, "sentiment_sum": self.sentiment_sum, "negative": self.negative,
                "mean_rating": round(self.rating_sum / n, DIGITS),
                "mean_sentiment": round(self.sentiment_sum / n, DIGITS),
                "share_negative": round(self.negative / n, DIGITS)}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> HourStats:
        return cls(hour_start(doc["hour"]), doc["product_id"], int(doc["reviews"]), int(doc["rating_sum"]),
                   float(doc["sentiment_sum"]), int(doc["negative"]))


def hour_stats(scores: Iterable[Mapping[str, Any]]) -> list[HourStats]:
    """Scored reviews (`score_document`s) summed per (hour, product), in (hour, product) order."""
    groups: dict[tuple[dt.datetime, str], list[Mapping[str, Any]]] = defaultdict(list)
    for s in scores:
        groups[(hour_start(s["event_time"]), s["product_id"])].append(s)
    return [HourStats(hour, product, len(g), sum(int(s["rating"]) for s in g), math.fsum(s["sentiment"] for s in g),
                      sum(1 for s in g if s["sentiment"] <= NEGATIVE_AT))
            for (hour, product), g in sorted(groups.items())]


@dataclass
class SentimentState:
    """Where the walk stopped (the first hour not decided yet) and the episodes open then."""

    next_hour: dt.datetime | None = None
    open: dict[str, dict[str, Any]] = field(default_factory=dict)  # product_id -> its open episode

    def to_document(self) -> dict[str, Any]:
        # a list, not a mapping by product: a product id may hold '.' or '$', which a field name may not
        return {"next_hour": self.next_hour, "open": [self.open[p] for p in sorted(self.open)]}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any] | None) -> SentimentState:
        if not doc:
            return cls()
        episodes = [_aware(dict(e)) for e in doc.get("open", [])]
        nxt = doc.get("next_hour")
        return cls(hour_start(nxt) if nxt is not None else None, {e["product_id"]: e for e in episodes})


def _aware(episode: dict[str, Any]) -> dict[str, Any]:
    for name in ("opened_at", "last_hour", "cleared_at"):
        if isinstance(episode.get(name), dt.datetime):
            episode[name] = hour_start(episode[name])
    return episode


@dataclass(frozen=True)
class WalkResult:
    state: SentimentState
    evaluated: int  # hours decided this walk
    changed: list[dict[str, Any]]  # episodes opened, extended or cleared: ops_alerts documents by _id
    # the `_id`s of the episodes this walk opened (some may have cleared in it too): the ones to notify
    opened: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Window:
    reviews: int
    mean: float


class _Product:
    """One product's hourly stats in hour order, summed over any range of hours."""

    def __init__(self) -> None:
        self.hours: list[dt.datetime] = []
        self.stats: list[HourStats] = []

    def add(self, s: HourStats) -> None:
        self.hours.append(s.hour)
        self.stats.append(s)

    def window(self, start: dt.datetime, end: dt.datetime) -> _Window:
        lo, hi = bisect.bisect_left(self.hours, start), bisect.bisect_left(self.hours, end)
        n = sum(s.reviews for s in self.stats[lo:hi])
        return _Window(n, math.fsum(s.sentiment_sum for s in self.stats[lo:hi]) / n if n else 0.0)

    def any_in(self, start: dt.datetime, end: dt.datetime) -> bool:
        return bisect.bisect_left(self.hours, start) < bisect.bisect_left(self.hours, end)


def _by_product(stats: Iterable[HourStats], start: dt.datetime, end: dt.datetime) -> dict[str, _Product]:
    kept: dict[tuple[dt.datetime, str], HourStats] = {}
    for s in stats:
        if start <= s.hour < end:
            kept[(s.hour, s.product_id)] = s  # one entry per (hour, product): a repeat is the same hour
    products: dict[str, _Product] = defaultdict(_Product)
    for key in sorted(kept):
        products[key[1]].add(kept[key])
    return products


def _reason(product: str, recent: _Window, base: _Window, window_hours: int) -> str:
    return (f"review sentiment of {product!r} fell to {recent.mean:+.2f} over the last {window_hours} h "
            f"({recent.reviews} reviews) from a baseline of {base.mean:+.2f} ({base.reviews} reviews)")


def walk(state: SentimentState, stats: Iterable[HourStats], *, start: dt.datetime, end: dt.datetime,
         config: SentimentConfig) -> WalkResult:
    """Decide the hours [start, end) in order (the state's `next_hour`, when set, is the start).

    `stats` must hold every hour of [start - config.history, end) that has reviews; others are ignored.
    """
    start = state.next_hour if state.next_hour is not None else hour_start(start)
    end = hour_start(end)
    if start >= end:
        return WalkResult(state, 0, [])
    products = _by_product(stats, start - config.history, end)
    window, baseline = config.window_hours * HOUR, config.baseline_hours * HOUR
    at_hour: dict[dt.datetime, set[str]] = defaultdict(set)  # the products with reviews in each hour
    for product, prod in products.items():
        for h in prod.hours:
            at_hour[h].add(product)
    opened = dict(state.open)
    changed: dict[str, dict[str, Any]] = {}  # by episode _id
    new: list[str] = []
    evaluated = 0
    hour = start
    while hour < end:
        e = hour + HOUR  # the hour [hour, e) is closed: decide at its end
        evaluated += 1
        if hour == start:  # every product with recent reviews (others have too few to decide anything)
            moved = {p for p, prod in products.items() if prod.any_in(e - window, e)}
        else:
            # only a product whose windows changed since the last hour can open an episode: an hour
            # entered the recent window, moved from it into the baseline, or left the baseline. With
            # the same windows, the last hour's decision (not open, or cleared: a weaker test failed)
            # stands. The open episodes are decided every hour.
            moved = at_hour.get(hour, set()) | at_hour.get(hour - window, set()) | \
                at_hour.get(hour - window - baseline, set())
        candidates = sorted(moved | set(opened))
        for product in candidates:
            prod = products.get(product) or _Product()
            recent, base = prod.window(e - window, e), prod.window(e - window - baseline, e - window)
            enough = recent.reviews >= config.min_reviews and base.reviews >= config.min_reviews
            gap = base.mean - recent.mean
            episode = opened.get(product)
            if episode is None and enough and gap >= config.drop:
                episode = {"_id": f"{SENTIMENT_DROP}|{product}|{e:%Y-%m-%dT%H:%MZ}", "kind": SENTIMENT_DROP,
                           "key": product, "product_id": product, "status": "open", "opened_at": e,
                           "baseline": round(base.mean, DIGITS), "recent": round(recent.mean, DIGITS),
                           "reviews": recent.reviews, "baseline_reviews": base.reviews, "drop": round(gap, DIGITS),
                           "lowest_recent": round(recent.mean, DIGITS), "hours": 1, "last_hour": e,
                           "cleared_at": None, "reason": _reason(product, recent, base, config.window_hours)}
                opened[product] = changed[episode["_id"]] = episode
                new.append(episode["_id"])
            elif episode is not None and enough and gap >= config.drop / 2:
                episode = {**episode, "hours": episode["hours"] + 1, "last_hour": e,
                           "lowest_recent": min(episode["lowest_recent"], round(recent.mean, DIGITS))}
                opened[product] = changed[episode["_id"]] = episode
            elif episode is not None:
                changed[episode["_id"]] = {**episode, "status": "cleared", "cleared_at": e, "last_hour": e}
                del opened[product]
        hour = e
    # keyed by episode: one product may clear an episode and open the next within one walk
    return WalkResult(replace(state, next_hour=end, open=opened), evaluated,
                      [changed[i] for i in sorted(changed)], sorted(new))
