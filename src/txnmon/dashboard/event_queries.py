"""What the dashboard shows of the event walks (carts, reviews, stock), as plain functions over their
outputs: cart_outcomes and kpi_abandonment_hour, kpi_sentiment_hour, ops_alerts and interventions.

Kept apart from queries.py (the transaction rollups) so each module stays small. MongoDB groups and
sums; the rates are divided here, from the summed counts, never averaged from per-hour rates (an hour
with one cart would weigh as much as an hour with a thousand).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd

from txnmon.core.collection_names import (
    ABANDONMENT_HOUR,
    CART_OUTCOMES,
    INTERVENTIONS,
    OPS_ALERTS,
    SENTIMENT_HOUR,
)
from txnmon.core.sentiment import SENTIMENT_DROP
from txnmon.core.stock import STOCK_KINDS
from txnmon.dashboard.queries import Window

FUNNEL_KEYS = ("carts", "checkouts", "purchased", "abandoned", "recovered")
RECENT_SENTIMENT = dt.timedelta(hours=24)  # "recent" for the lowest-sentiment list: the window's last day
MIN_RECENT_REVIEWS = 3  # a product with fewer recent reviews is not ranked: one angry review is no signal


def _frame(rows: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)


def _hours(w: Window) -> dict[str, Any]:
    return {"hour": {"$gte": w.hour_start, "$lt": w.end}}


def ratio(part: float, whole: float) -> float | None:
    """part / whole, None without a whole (no carts: no rate, rather than a rate of 0)."""
    return part / whole if whole else None


# --- carts ---------------------------------------------------------------------------------------

_CART_COUNTS = {
    "carts": {"$sum": 1},
    "checkouts": {"$sum": {"$cond": [{"$eq": ["$reached_checkout", True]}, 1, 0]}},
    "purchased": {"$sum": {"$cond": [{"$eq": ["$outcome", "purchased"]}, 1, 0]}},
    "abandoned": {"$sum": {"$cond": [{"$eq": ["$outcome", "abandoned"]}, 1, 0]}},
    "recovered": {"$sum": {"$cond": [{"$eq": ["$recovered", True]}, 1, 0]}},
}


def funnel(groups: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The cart funnel from grouped counts (any number of groups, summed): carts, checkouts started,
    purchased, abandoned, recovered, and the abandonment and recovery rates."""
    total = {k: int(sum(g.get(k) or 0 for g in groups)) for k in FUNNEL_KEYS}
    return {**total, "abandonment_rate": ratio(total["abandoned"], total["carts"]),
            "recovery_rate": ratio(total["recovered"], total["abandoned"])}


def cart_funnel(db: Any, w: Window) -> dict[str, Any]:
    """Decided carts whose first event falls in the window's hours (cart_outcomes, indexed on `hour`).
    Counted per cart, not from kpi_abandonment_hour: that counts a cart once under each of its products."""
    return funnel(db.aggregate(CART_OUTCOMES, [{"$match": _hours(w)}, {"$group": {"_id": None, **_CART_COUNTS}}]))


def rates_by(groups: Sequence[dict[str, Any]], key: str) -> pd.DataFrame:
    """Per `key`: carts, abandoned and the abandonment rate from summed counts, most carts first."""
    rows = [{key: g["_id"] if g["_id"] is not None else "none", "carts": int(g["carts"]),
             "abandoned": int(g["abandoned"]), "rate": ratio(g["abandoned"], g["carts"])} for g in groups]
    frame = _frame(rows, [key, "carts", "abandoned", "rate"])
    if key == "hour":
        return frame.sort_values("hour", ignore_index=True)
    return frame.sort_values(["carts", key], ascending=[False, True], ignore_index=True)


def abandonment_by_hour(db: Any, w: Window) -> pd.DataFrame:
    groups = db.aggregate(CART_OUTCOMES, [{"$match": _hours(w)}, {"$group": {
        "_id": "$hour", "carts": _CART_COUNTS["carts"], "abandoned": _CART_COUNTS["abandoned"]}}])
    return rates_by(groups, "hour")


def abandonment_by_product(db: Any, w: Window) -> pd.DataFrame:
    """kpi_abandonment_hour is per product already (a cart counts under each product it held)."""
    groups = db.aggregate(ABANDONMENT_HOUR, [{"$match": _hours(w)}, {"$group": {
        "_id": "$product", "carts": {"$sum": "$carts"}, "abandoned": {"$sum": "$abandoned"}}}])
    return rates_by(groups, "product")


def abandonment_by_payment(db: Any, w: Window) -> pd.DataFrame:
    """Per cart's payment method (cart_outcomes: summing kpi_abandonment_hour over products would count a
    cart of three products three times)."""
    groups = db.aggregate(CART_OUTCOMES, [{"$match": _hours(w)}, {"$group": {
        "_id": "$payment_method", "carts": _CART_COUNTS["carts"], "abandoned": _CART_COUNTS["abandoned"]}}])
    return rates_by(groups, "payment_method")


INTERVENTION_COLUMNS = ["at", "trigger", "user_id", "cart", "products", "value", "payment_method"]


def interventions(db: Any, limit: int = 50) -> pd.DataFrame:
    """The newest interventions first (by the cart's deadline `at`, indexed)."""
    rows = db.find(INTERVENTIONS, sort=[("at", -1)], limit=limit, projection={c: 1 for c in INTERVENTION_COLUMNS})
    for r in rows:  # a list cell would render as a Python repr
        r["products"] = ", ".join(str(p) for p in r.get("products") or [])
    return _frame(rows, ["_id", *INTERVENTION_COLUMNS])


# --- reviews -------------------------------------------------------------------------------------


def sentiment_table(groups: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Per product: reviews, mean rating, mean sentiment and share of negative reviews, from the summed
    exact sums; lowest mean sentiment first."""
    rows = [{"product": g["_id"], "reviews": int(g["reviews"]), "mean_rating": ratio(g["rating_sum"], g["reviews"]),
             "mean_sentiment": ratio(g["sentiment_sum"], g["reviews"]), "share_negative": ratio(g["negative"],
                                                                                               g["reviews"])}
            for g in groups if g.get("reviews")]
    frame = _frame(rows, ["product", "reviews", "mean_rating", "mean_sentiment", "share_negative"])
    return frame.sort_values(["mean_sentiment", "product"], ignore_index=True)


def _sentiment_groups(db: Any, w: Window) -> list[dict[str, Any]]:
    return db.aggregate(SENTIMENT_HOUR, [{"$match": _hours(w)}, {"$group": {
        "_id": "$product_id", "reviews": {"$sum": "$reviews"}, "rating_sum": {"$sum": "$rating_sum"},
        "sentiment_sum": {"$sum": "$sentiment_sum"}, "negative": {"$sum": "$negative"}}}])


def sentiment_by_product(db: Any, w: Window) -> pd.DataFrame:
    return sentiment_table(_sentiment_groups(db, w))


def lowest_recent_sentiment(db: Any, w: Window, limit: int = 5) -> pd.DataFrame:
    """The products with the lowest mean sentiment over the window's last RECENT_SENTIMENT, among those
    with at least MIN_RECENT_REVIEWS reviews in it."""
    recent = Window(max(w.start, w.end - RECENT_SENTIMENT), w.end)
    table = sentiment_by_product(db, recent)
    return table[table["reviews"] >= MIN_RECENT_REVIEWS].head(limit).reset_index(drop=True)


# --- ops alerts with their figures ---------------------------------------------------------------

STOCK_ALERT_COLUMNS = ["opened_at", "kind", "product", "location", "level", "rate_per_hour",
                       "projected_stockout_at", "lead_time_minutes", "stocked_out_at", "reason"]
SENTIMENT_ALERT_COLUMNS = ["opened_at", "product_id", "baseline", "recent", "drop", "reviews", "reason"]


def open_alerts(db: Any, kinds: Sequence[str], columns: list[str], limit: int = 50) -> pd.DataFrame:
    """Open ops alerts of `kinds`, newest first (index kind_status_opened)."""
    rows = db.find(OPS_ALERTS, {"kind": {"$in": list(kinds)}, "status": "open"}, sort=[("opened_at", -1)],
                   limit=limit, projection={c: 1 for c in columns})
    return _frame(rows, ["_id", *columns])


def open_stock_alerts(db: Any, limit: int = 50) -> pd.DataFrame:
    return open_alerts(db, STOCK_KINDS, STOCK_ALERT_COLUMNS, limit)


def open_sentiment_alerts(db: Any, limit: int = 50) -> pd.DataFrame:
    return open_alerts(db, [SENTIMENT_DROP], SENTIMENT_ALERT_COLUMNS, limit)
