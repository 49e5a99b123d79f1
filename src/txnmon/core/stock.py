"""Stock depletion and restock in event time, per (product, location): levels, depletion alerts, stock-outs.

Input, in event time: the stored stock events (src/txnmon/core/event_contracts.py: `quantity_on_hand`
sets the level, `delta` adds to it) and the successful purchases the processor stored (status not
`failed`, type not `refund`; `quantity` units, 1 when absent, of `product` in `location`, the city).
A key's level is unknown until its first `quantity_on_hand`; sales and deltas before it are ignored.

`walk()` takes the events with `state.walked_until <= event_time < until` in one order (time, stock
before sales at the same time, then id) and carries a small `StockState`, so walking to `until` in
one call or in any number of steps gives the same documents (the unit tests check it); the wall clock
and the replay speed play no part.

Decisions, made after each event of a key (between events the level is constant and the rate can
only fall, so the projection can only grow: no decision is missed):

- depletion rate: units sold in the last `rate_window` (the event's time included) per hour;
- projected stock-out: now + level / rate (none while nothing sold in the window);
- stock_depletion (an operational alert): the level is above 0 and the projection is less than
  `lead_time + margin` away. The margin exists because a projection is only checked at a sale: with
  a steady rate the alert comes at most one sale late, and the margin keeps it at least `lead_time`
  (the time a restock takes) before the stock-out. One alert per episode; it clears only when a
  restock (a positive delta or a higher count) lifts the projection past the same threshold;
- stock_out: the level reaches 0 or less (a stock-out recorded in its own episode, cleared by the
  restock that lifts the level above 0; an open depletion episode records `stocked_out_at`).

Per closed event-time hour with events, a KPI row (kpi_stock_hour): opening level, sold, restocked,
adjusted (counts that lowered the level), closing level, the rate at the hour's end and hours of cover.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

HOUR = dt.timedelta(hours=1)
STOCK_DEPLETION = "stock_depletion"
STOCK_OUT = "stock_out"
STOCK_KINDS = (STOCK_DEPLETION, STOCK_OUT)
_STOCK, _SALE = 0, 1  # at one time, stock events before sales


class StockConfigError(ValueError):
    """A stock threshold is out of range (Settings refuses it before this is built)."""


@dataclass(frozen=True)
class StockConfig:
    rate_window: dt.timedelta = dt.timedelta(minutes=120)
    lead_time: dt.timedelta = dt.timedelta(minutes=240)
    margin: dt.timedelta = dt.timedelta(minutes=30)

    def __post_init__(self) -> None:
        if self.rate_window <= dt.timedelta(0) or self.lead_time <= dt.timedelta(0) or self.margin < dt.timedelta(0):
            raise StockConfigError("the rate window and lead time must be positive, the margin not negative")

    @property
    def threshold(self) -> dt.timedelta:
        return self.lead_time + self.margin


@dataclass(frozen=True)
class Movement:
    """One input event of a key: a stock event (`count` or `delta`) or a sale (`sold`)."""

    at: dt.datetime
    product: str
    location: str
    event_id: str
    count: float | None = None  # quantity_on_hand
    delta: float | None = None
    sold: float | None = None

    @property
    def order(self) -> tuple[dt.datetime, int, str]:
        return (self.at, _SALE if self.sold is not None else _STOCK, self.event_id)


def stock_movement(doc: Mapping[str, Any]) -> Movement:
    """From a stored stock event (normalise_stock_event's document)."""
    count, delta = doc.get("quantity_on_hand"), doc.get("delta")
    return Movement(_utc(doc["event_time"]), str(doc["product_id"]), str(doc["location"]), str(doc["_id"]),
                    count=None if count is None else count, delta=None if delta is None else delta)


def sale_movement(doc: Mapping[str, Any]) -> Movement | None:
    """From a stored transaction; None unless it is a successful purchase of a product at a location."""
    if doc.get("status") == "failed" or doc.get("type") == "refund" or not doc.get("product") \
            or not doc.get("location"):
        return None
    qty = doc.get("quantity")
    units = qty if isinstance(qty, int | float) and not isinstance(qty, bool) else 1
    if units <= 0:
        return None
    return Movement(_utc(doc["event_time"]), str(doc["product"]), str(doc["location"]), str(doc["_id"]),
                    sold=units)


@dataclass
class KeyState:
    level: float | None = None  # None until the first count
    last_at: dt.datetime | None = None
    recent: list[tuple[dt.datetime, float]] = field(default_factory=list)  # sales inside the rate window
    hour: dt.datetime | None = None  # the hour `acc` counts
    acc: dict[str, Any] = field(default_factory=dict)
    depletion: dict[str, Any] | None = None  # the open episode
    stock_out: dict[str, Any] | None = None

    def to_document(self, product: str, location: str) -> dict[str, Any]:
        return {"product": product, "location": location, "level": self.level, "last_at": self.last_at,
                "recent": [[t, q] for t, q in self.recent], "hour": self.hour, "acc": self.acc,
                "depletion": self.depletion, "stock_out": self.stock_out}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> KeyState:
        return cls(level=doc.get("level"), last_at=_utc(doc.get("last_at")),
                   recent=[(_utc(t), q) for t, q in doc.get("recent", [])], hour=_utc(doc.get("hour")),
                   acc=dict(doc.get("acc") or {}), depletion=_utc_doc(doc.get("depletion")),
                   stock_out=_utc_doc(doc.get("stock_out")))


@dataclass
class StockState:
    walked_until: dt.datetime | None = None  # events before this were walked
    keys: dict[tuple[str, str], KeyState] = field(default_factory=dict)

    def to_document(self) -> dict[str, Any]:
        return {"walked_until": self.walked_until,
                "keys": [k.to_document(p, loc) for (p, loc), k in sorted(self.keys.items())]}

    @classmethod
    def from_document(cls, doc: Mapping[str, Any] | None) -> StockState:
        if not doc:
            return cls()
        return cls(_utc(doc.get("walked_until")),
                   {(k["product"], k["location"]): KeyState.from_document(k) for k in doc.get("keys", [])})


@dataclass
class StockWalk:
    state: StockState
    alerts: list[dict[str, Any]]  # episodes opened, updated or cleared (whole documents, by _id)
    hours: list[dict[str, Any]]  # kpi_stock_hour rows of the hours closed by this walk
    levels: list[dict[str, Any]]  # every known key's level at `until`
    walked: int  # events walked
    # the `_id`s of the episodes this walk opened (some may have cleared in it too): the ones to notify.
    # An episode of an earlier walk that stocks out or clears is in `alerts` again, not here
    opened: list[str] = field(default_factory=list)


def _utc(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def _utc_doc(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if doc is None else {k: _utc(v) for k, v in doc.items()}


def key_id(product: str, location: str) -> str:
    """`product|location`, each percent-escaped like the kpi_* `_id`s, so two keys cannot collide."""
    return "|".join(part.replace("%", "%25").replace("|", "%7C") for part in (product, location))


def episode_id(kind: str, product: str, location: str, at: dt.datetime) -> str:
    return f"{kind}|{key_id(product, location)}|{at.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%S}"


def hour_start(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def rate_per_hour(recent: Iterable[tuple[dt.datetime, float]], at: dt.datetime, config: StockConfig) -> float:
    """Units per hour sold in (at - rate_window, at]."""
    units = sum(q for t, q in recent if at - config.rate_window < t <= at)
    return units / (config.rate_window / HOUR)


def projection(level: float, rate: float, at: dt.datetime) -> tuple[float | None, dt.datetime | None]:
    """(minutes to stock-out, the projected stock-out time); (None, None) while nothing sells."""
    if rate <= 0:
        return None, None
    minutes = max(level, 0) / rate * 60
    return minutes, at + dt.timedelta(minutes=minutes)


def _short(minutes: float | None, config: StockConfig) -> bool:
    return minutes is not None and minutes < config.threshold / dt.timedelta(minutes=1)


def walk(state: StockState, movements: Iterable[Movement], until: dt.datetime, config: StockConfig) -> StockWalk:
    """Walk the movements with `state.walked_until <= at < until` (others are ignored: a late one missed
    its turn) and close the hours ending at or before `until`."""
    until = until.astimezone(dt.UTC)
    start = state.walked_until
    new = StockState(start, {k: KeyState.from_document(v.to_document(*k)) for k, v in state.keys.items()})
    alerts: dict[str, dict[str, Any]] = {}
    hours: list[dict[str, Any]] = []
    walked = 0
    opened: list[str] = []
    todo = sorted((m for m in movements if m.at < until and (start is None or m.at >= start)), key=lambda m: m.order)
    for m in todo:
        key = new.keys.setdefault((m.product, m.location), KeyState())
        if key.hour is not None and m.at >= key.hour + HOUR:
            hours.append(_close_hour(key, m.product, m.location, config))
        for episode in _apply(key, m, config):
            if episode["_id"] not in alerts and episode["opened_at"] == m.at and episode["status"] == "open":
                opened.append(episode["_id"])  # an episode opens at its event, never one walked before
            alerts[episode["_id"]] = episode
        walked += 1
    for (product, location), key in sorted(new.keys.items()):
        if key.hour is not None and key.hour + HOUR <= until:
            hours.append(_close_hour(key, product, location, config))
    if start is None or until > start:
        new.walked_until = until
    _prune(new, config)
    levels = [_level(k, p, loc, until, config) for (p, loc), k in sorted(new.keys.items()) if k.level is not None]
    return StockWalk(new, list(alerts.values()), hours, levels, walked, opened)


def _prune(state: StockState, config: StockConfig) -> None:
    """Drop the pairs with no count yet and no sale within the rate window before where the walk stopped:
    they hold nothing a later event would use (a later sale's rate window starts after those sales), so the
    one state document does not grow with every pair ever sold. Decided at `walked_until` only, which
    any split of the walk reaches alike, so the state stays the same whatever the chunks."""
    if state.walked_until is None:
        return
    horizon = state.walked_until - config.rate_window
    for pair in [k for k, key in state.keys.items() if key.level is None and all(t <= horizon for t, _ in key.recent)]:
        del state.keys[pair]


def _apply(key: KeyState, m: Movement, config: StockConfig) -> list[dict[str, Any]]:
    # sales out of the rate window are dropped at every event (not only at sales), so the state is the
    # same whether or not the pair was pruned meanwhile (`_prune`)
    key.recent = [(t, q) for t, q in key.recent if t > m.at - config.rate_window]
    if m.sold is not None:
        key.recent.append((m.at, m.sold))
    if key.level is None and m.count is None:
        return []  # no count yet: nothing to start from
    if key.hour is None or m.at >= key.hour + HOUR:
        key.hour = hour_start(m.at)
        key.acc = {"opening_level": key.level, "sold": 0, "restocked": 0, "adjusted": 0}
    before = key.level
    if m.sold is not None:
        key.level = before - m.sold
        key.acc["sold"] += m.sold
    else:
        key.level = m.count if m.count is not None else (before or 0) + m.delta
        change = key.level - (before or 0) if before is not None else 0
        key.acc["restocked" if change > 0 else "adjusted"] += change
    key.last_at = m.at
    return _decide(key, m, before, config)


def _decide(key: KeyState, m: Movement, before: float | None, config: StockConfig) -> list[dict[str, Any]]:
    out = []
    rate = rate_per_hour(key.recent, m.at, config)
    minutes, out_at = projection(key.level, rate, m.at)
    raised = m.sold is None and before is not None and key.level > before
    figures = {"level": key.level, "rate_per_hour": rate, "minutes_to_stockout": minutes,
               "projected_stockout_at": out_at}
    if key.stock_out is not None and key.level > 0:
        out.append({**key.stock_out, "status": "cleared", "cleared_at": m.at, "restocked_to": key.level})
        key.stock_out = None
    if key.depletion is not None:
        if raised and not _short(minutes, config):
            out.append({**key.depletion, "status": "cleared", "cleared_at": m.at, "cleared_by": m.event_id,
                        "level_at_clear": key.level, "projection_at_clear": figures})
            key.depletion = None
    elif key.level > 0 and _short(minutes, config):
        key.depletion = {
            "_id": episode_id(STOCK_DEPLETION, m.product, m.location, m.at), "kind": STOCK_DEPLETION,
            "key": key_id(m.product, m.location), "product": m.product, "location": m.location,
            "status": "open", "severity": "medium", "opened_at": m.at, "cleared_at": None, "stocked_out_at": None,
            "opened_by": m.event_id, **figures, "lead_time_minutes": config.lead_time / dt.timedelta(minutes=1),
            "margin_minutes": config.margin / dt.timedelta(minutes=1),
            "rate_window_minutes": config.rate_window / dt.timedelta(minutes=1),
            "reason": (f"{m.product} in {m.location}: {key.level:g} left, selling {rate:.2f}/h, projected to run "
                       f"out at {out_at:%Y-%m-%d %H:%M} UTC ({minutes:.0f} min), within the restock lead time of "
                       f"{config.lead_time / dt.timedelta(minutes=1):.0f} min + "
                       f"{config.margin / dt.timedelta(minutes=1):.0f} min margin"),
        }
        out.append(dict(key.depletion))
    if key.level <= 0 and key.stock_out is None and (before is None or before > 0):
        key.stock_out = {
            "_id": episode_id(STOCK_OUT, m.product, m.location, m.at), "kind": STOCK_OUT,
            "key": key_id(m.product, m.location), "product": m.product, "location": m.location, "status": "open",
            "severity": "high", "opened_at": m.at, "cleared_at": None, "level": key.level,
            "depletion_alert": key.depletion["_id"] if key.depletion else None,
            "reason": f"{m.product} in {m.location} is out of stock (level {key.level:g}) since "
                      f"{m.at:%Y-%m-%d %H:%M:%S} UTC",
        }
        out.append(dict(key.stock_out))
        if key.depletion is not None and key.depletion["stocked_out_at"] is None:
            key.depletion["stocked_out_at"] = m.at
            out.append(dict(key.depletion))
    return out


def _close_hour(key: KeyState, product: str, location: str, config: StockConfig) -> dict[str, Any]:
    assert key.hour is not None
    end = key.hour + HOUR
    rate = rate_per_hour(key.recent, end - dt.timedelta(microseconds=1), config)
    closing = key.level
    # the kpi_* `_id` shape: the hour, then the escaped keys (docs/rollups.md)
    row = {"_id": f"{key.hour:%Y-%m-%dT%H}|{key_id(product, location)}", "hour": key.hour, "product": product,
           "location": location, **key.acc, "closing_level": closing, "rate_per_hour_at_close": rate,
           "hours_of_cover": None if rate <= 0 or closing is None else max(closing, 0) / rate}
    key.hour, key.acc = None, {}
    return row


def _level(key: KeyState, product: str, location: str, until: dt.datetime, config: StockConfig) -> dict[str, Any]:
    rate = rate_per_hour(key.recent, until - dt.timedelta(microseconds=1), config)
    minutes, out_at = projection(key.level or 0, rate, until)
    return {"_id": key_id(product, location), "product": product, "location": location, "level": key.level,
            "last_event_at": key.last_at, "as_of": until, "rate_per_hour": rate, "minutes_to_stockout": minutes,
            "projected_stockout_at": out_at, "hours_of_cover": None if minutes is None else minutes / 60,
            "depletion_alert": key.depletion["_id"] if key.depletion else None,
            "stock_out_since": key.stock_out["opened_at"] if key.stock_out else None}
