"""Cart abandonment, decided in event time: which carts were abandoned, which abandoned carts were
recovered, which abandonments call for an intervention, and the hourly KPIs. Pure: no clock, no I/O;
the caller (src/txnmon/jobs/abandonment.py) reads the events and passes `closed_until` in.

Definitions (docs/events.md, "Cart abandonment"):

- A **cart** is the cart events with one `cart_id` (or, without one, one `session_id`: key
  `session:<id>`). Its owner is the user of its first event. Its *end* is its last event before the
  first gap longer than the timeout between two of its events: later events of the same key come
  after the cart was decided and are ignored, so the decision never waits on them.
- The cart's **deadline** is its end + ABANDON_TIMEOUT_MINUTES. It is **purchased** when its user makes a
  purchase (type `purchase` or no type; status `success` or `failed`, as the generator ends a cart with
  either) with an event time from the cart's first event to the deadline, both included, and
  **abandoned** otherwise. It is decided once `closed_until` is past the deadline: every event it depends
  on is then older than `closed_until`, so the decision is the same at any replay speed or step size.
- An abandoned cart is **recovered** when its user makes a *successful* purchase of one of the cart's
  products within RECOVERY (24 h) after the cart's end; decided once `closed_until` is past end + 24 h.
- **Interventions**, one per trigger, `_id` `<trigger>:<cart key>`: `repeat_abandoner` on the
  abandonment that brings the user's abandoned carts within the trailing ABANDON_REPEAT_HOURS (by
  deadline, this one included) to exactly ABANDON_REPEAT_COUNT; `after_failed_payment` when the cart's
  first event follows a failed purchase of the user by at most ABANDON_AFTER_FAILED_MINUTES.
- **Payment method** of a cart: the purchase that ended it; for an abandoned cart, the user's latest
  purchase within PAYMENT_LOOKBACK (24 h) before the cart's first event, else `unknown`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ABANDONED", "AFTER_FAILED", "PURCHASED", "RECOVERY", "REPEAT", "AbandonConfig", "Cart", "build_carts",
           "cart_key", "decide_carts", "decide_recovery", "interventions", "kpi_rows"]

ABANDONED, PURCHASED = "abandoned", "purchased"
REPEAT, AFTER_FAILED = "repeat_abandoner", "after_failed_payment"
RECOVERY = dt.timedelta(hours=24)  # an abandoned cart's products bought within this after its end: recovered
PAYMENT_LOOKBACK = dt.timedelta(hours=24)  # how far back an abandoned cart's payment method is looked for
UNKNOWN = "unknown"
NO_PRODUCT = "none"  # the product of a KPI row for a cart that ended empty


@dataclass(frozen=True)
class AbandonConfig:
    timeout: dt.timedelta = dt.timedelta(minutes=60)
    repeat_count: int = 2
    repeat_window: dt.timedelta = dt.timedelta(hours=24)
    after_failed: dt.timedelta = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Cart:
    key: str
    user_id: str
    first: dt.datetime
    end: dt.datetime  # the last event before the first gap longer than the timeout
    products: tuple[str, ...]  # net of removals, sorted
    value: float  # price x quantity of the items added, net of those removed
    checkout: bool  # reached checkout_started
    ids: Mapping[str, str]  # cart_id and/or session_id


def cart_key(event: Mapping[str, Any]) -> str:
    """The cart an event belongs to: its cart_id, or `session:<session_id>` without one."""
    cart = event.get("cart_id")
    return str(cart) if cart else f"session:{event['session_id']}"


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def build_carts(events: Iterable[Mapping[str, Any]], timeout: dt.timedelta) -> dict[str, Cart]:
    """The carts of these events (each cart's events up to its end; later ones ignored)."""
    by_key: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for e in events:
        by_key[cart_key(e)].append(e)
    carts = {}
    for key, evs in by_key.items():
        evs.sort(key=lambda e: (_utc(e["event_time"]), str(e["_id"])))
        kept = [evs[0]]
        for e in evs[1:]:
            if _utc(e["event_time"]) - _utc(kept[-1]["event_time"]) > timeout:
                break
            kept.append(e)
        quantities: dict[str, int] = defaultdict(int)
        value = 0.0
        for e in kept:
            sign = {"item_added": 1, "item_removed": -1}.get(e["event_type"], 0)
            if sign and e.get("product_id") is not None:
                quantities[str(e["product_id"])] += sign * int(e.get("quantity") or 0)
                value += sign * float(e.get("price") or 0) * int(e.get("quantity") or 0)
        ids = {f: str(kept[0][f]) for f in ("cart_id", "session_id") if kept[0].get(f)}
        carts[key] = Cart(key, str(kept[0]["user_id"]), _utc(kept[0]["event_time"]), _utc(kept[-1]["event_time"]),
                          tuple(sorted(p for p, q in quantities.items() if q > 0)), round(max(value, 0.0), 2),
                          any(e["event_type"] == "checkout_started" for e in kept), ids)
    return carts


def is_purchase(tx: Mapping[str, Any]) -> bool:
    return tx.get("type") in (None, "purchase")


def _by_user(transactions: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for tx in transactions:
        if is_purchase(tx):
            out[str(tx["user_id"])].append(tx)
    for txs in out.values():
        txs.sort(key=lambda t: (_utc(t["event_time"]), str(t["_id"])))
    return out


def decide_carts(carts: Iterable[Cart], transactions: Iterable[Mapping[str, Any]], config: AbandonConfig, *,
                 start: dt.datetime | None, until: dt.datetime) -> list[dict[str, Any]]:
    """The outcome documents of the carts whose deadline is in [start, until) (start None: any before until).

    `transactions` must hold the carts' users' purchases from PAYMENT_LOOKBACK (and the after-failed
    window) before each cart's first event up to `until`; nothing at or after `until` is looked at."""
    purchases = _by_user(transactions)
    out = []
    for cart in carts:
        deadline = cart.end + config.timeout
        if deadline >= until or (start is not None and deadline < start):
            continue
        mine = [t for t in purchases.get(cart.user_id, []) if _utc(t["event_time"]) < until]
        ending = next((t for t in mine if cart.first <= _utc(t["event_time"]) <= deadline), None)
        doc: dict[str, Any] = {
            "_id": cart.key, **cart.ids, "user_id": cart.user_id, "first_event_time": cart.first,
            "last_event_time": cart.end, "deadline": deadline,
            "hour": cart.first.replace(minute=0, second=0, microsecond=0), "products": list(cart.products),
            "value": cart.value, "reached_checkout": cart.checkout}
        if ending is not None:
            doc.update(outcome=PURCHASED, transaction_id=str(ending["_id"]),
                       payment_method=ending.get("payment_method") or UNKNOWN)
        else:
            before = [t for t in mine if cart.first - PAYMENT_LOOKBACK <= _utc(t["event_time"]) < cart.first]
            failed = [t for t in before if t.get("status") == "failed"
                      and _utc(t["event_time"]) >= cart.first - config.after_failed]
            doc.update(outcome=ABANDONED, payment_method=(before[-1].get("payment_method") or UNKNOWN) if before
                       else UNKNOWN, after_failed_transaction=str(failed[-1]["_id"]) if failed else None,
                       recovery_due=cart.end + RECOVERY, recovered=None, recovered_by=None)
        out.append(doc)
    out.sort(key=lambda d: (d["deadline"], d["_id"]))
    return out


def decide_recovery(doc: Mapping[str, Any], transactions: Iterable[Mapping[str, Any]],
                    until: dt.datetime) -> dict[str, Any]:
    """An abandoned cart's document with `recovered` decided when `until` is past its recovery_due."""
    due = _utc(doc["recovery_due"])
    if doc.get("outcome") != ABANDONED or due >= until:
        return dict(doc)
    end, products = _utc(doc["last_event_time"]), set(doc["products"])
    bought = [t for t in _by_user(transactions).get(doc["user_id"], [])
              if t.get("status", "success") == "success" and end < _utc(t["event_time"]) <= due
              and t.get("product") in products]
    return {**doc, "recovered": bool(bought), "recovered_by": str(bought[0]["_id"]) if bought else None}


def interventions(decided: Sequence[Mapping[str, Any]], history: Iterable[Mapping[str, Any]],
                  config: AbandonConfig) -> list[dict[str, Any]]:
    """The interventions the abandoned carts among `decided` trigger. `history`: the users' abandoned
    carts decided before (at least those within the repeat window before each of `decided`)."""
    abandoned = {d["_id"]: d for d in (*history, *decided) if d.get("outcome") == ABANDONED}
    by_user: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for d in abandoned.values():
        by_user[d["user_id"]].append(d)
    out = []
    for d in decided:
        if d.get("outcome") != ABANDONED:
            continue
        at = _utc(d["deadline"])
        common = {"user_id": d["user_id"], "cart": d["_id"], "at": at, "products": list(d["products"]),
                  "value": d["value"], "payment_method": d["payment_method"]}
        window = sorted((_utc(o["deadline"]), o["_id"]) for o in by_user[d["user_id"]]
                        if at - config.repeat_window < _utc(o["deadline"]) <= at and
                        (_utc(o["deadline"]), o["_id"]) <= (at, d["_id"]))
        if len(window) == config.repeat_count:
            out.append({"_id": f"{REPEAT}:{d['_id']}", "trigger": REPEAT, **common,
                        "carts": [key for _, key in window]})
        if d.get("after_failed_transaction"):
            out.append({"_id": f"{AFTER_FAILED}:{d['_id']}", "trigger": AFTER_FAILED, **common,
                        "failed_transaction": d["after_failed_transaction"]})
    return out


def kpi_rows(outcomes: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`kpi_abandonment_hour`: per hour of the carts' first events, product and payment method, the
    decided carts, the abandoned ones, the rate, and the abandoned carts recovered so far. A cart
    counts once under each of its products."""
    rows: dict[tuple[dt.datetime, str, str], dict[str, Any]] = {}
    for d in outcomes:
        for product in d["products"] or [NO_PRODUCT]:
            hour = _utc(d["hour"])
            key = (hour, product, d["payment_method"])
            row = rows.setdefault(key, {"_id": f"{hour:%Y-%m-%dT%H}|{product}|{d['payment_method']}", "hour": hour,
                                        "product": product, "payment_method": d["payment_method"], "carts": 0,
                                        "abandoned": 0, "recovered": 0})
            row["carts"] += 1
            row["abandoned"] += d["outcome"] == ABANDONED
            row["recovered"] += d.get("recovered") is True
    for row in rows.values():
        row["rate"] = round(row["abandoned"] / row["carts"], 6)
    return sorted(rows.values(), key=lambda r: r["_id"])
