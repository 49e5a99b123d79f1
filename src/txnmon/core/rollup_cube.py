"""The cubes a rollup run folds its one read into, and the kpi_* documents derived from them.

`TxCube` holds per-minute totals, per-hour cells over CUBE_DIMS, the 5-minute signal buckets' raw
counts and the buyer-hours of customer KPIs; `AlertCube` the live alerts per (hour, rule,
severity). `rows(rollup)` gives a rollup's documents (`tx_document`, `signal_document`), with the
`_id`s of src/txnmon/core/rollups.py (the catalog, the reads, the write plans). All pure.

Sums are exact: amounts are added as integers in units of 2**-1074 (the smallest float step) and
rounded to a float once per bucket, so a bucket's value is the correctly rounded sum of its
amounts whatever order the server returns them in, and re-running a run writes equal documents.
The contract bounds every amount (MAX_AMOUNT), so sums stay finite.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from txnmon.core.collection_names import ALERTS
from txnmon.core.rollups import (
    CUBE_DIMS,
    GRAIN_FIELD,
    HOUR_FMT,
    NONE_KEY,
    SIGNAL_BUCKET_MINUTES,
    Rollup,
    rollup_id,
)

# --- exact sums --------------------------------------------------------------------------------

_UNIT_BITS = 1074  # 2**-1074 is the smallest positive float: every float is a whole number of these units
_SCALE = 1 << _UNIT_BITS


def to_units(x: float) -> int:
    """`x` as an exact whole number of 2**-1074 units."""
    n, d = x.as_integer_ratio()
    return n << (_UNIT_BITS + 1 - d.bit_length())


def from_units(units: int, count: int = 1) -> float:
    """`units / count` as the nearest float (Python rounds int / int correctly)."""
    return units / (_SCALE * count)


def _amount_units(amount: Any) -> int | None:
    if amount.__class__ is bool or not isinstance(amount, int | float):
        return None  # not a number: counted as a transaction, not summed (like $sum / $avg)
    try:
        return to_units(amount)
    except (OverflowError, ValueError):  # inf / nan: the contract rejects them; never in a sum
        return None


def _key(value: Any) -> Any:
    if value is None:
        return NONE_KEY
    if value.__class__ is str:
        return value
    try:
        hash(value)
    except TypeError:
        return str(value)
    return value


# --- the transaction cube ----------------------------------------------------------------------

# slots of an accumulator: counts, then exact sums in units
_N, _SALES, _ALERTED, _FAILED, _REFUNDS, _LATE, _NUMERIC, _AMOUNT, _REVENUE, _REFUNDED = range(10)
_SLOTS = 10


def _time(parts: Sequence[int]) -> dt.datetime:
    """(year, month, day, hour[, minute]) -> the UTC datetime."""
    return dt.datetime(*parts, tzinfo=dt.UTC)


@dataclass
class TxCube:
    """Per-minute totals and per-hour cells over CUBE_DIMS, from one pass over transactions."""

    minutes: dict[tuple[int, ...], list[int]] = field(default_factory=dict)  # (y, m, d, h, min) -> acc
    cells: dict[tuple[Any, ...], list[int]] = field(default_factory=dict)  # ((y, m, d, h), *CUBE_DIMS) -> acc
    # what business signals (5-minute buckets) and customer KPIs (hours) are derived from:
    pays: dict[tuple[Any, ...], list[Any]] = field(default_factory=dict)  # (minute, method) -> [n, failed, users]
    # (minute, product, location, user) -> sales: trends count buyers, so a multi-item checkout or a
    # traveller's few purchases in a quiet hour are one buyer, not a burst of sales
    sales: dict[tuple[Any, ...], int] = field(default_factory=dict)
    # ((y, m, d, h), user) -> orders, and -> revenue units: ints, not [orders, units] lists, because lists
    # are tracked by the garbage collector and one per buyer-hour made its passes cost more than the fold
    orders: dict[tuple[Any, ...], int] = field(default_factory=dict)
    spent: dict[tuple[Any, ...], int] = field(default_factory=dict)
    read: int = 0
    skipped: int = 0  # no datetime event_time: not in any bucket

    def add(self, doc: Mapping[str, Any]) -> None:
        """Fold one transaction in: the hot loop of a run, kept flat on purpose (about 4 us a document)."""
        self.read += 1
        get = doc.get
        et = get("event_time")
        if et.__class__ is not dt.datetime and not isinstance(et, dt.datetime):
            self.skipped += 1
            return
        offset = et.utcoffset()
        if offset:  # pymongo gives UTC; anything else is moved to UTC (naive times are read as UTC)
            et = et - offset
        amount = get("amount")
        units = None
        if amount.__class__ is float:
            try:
                n, d = amount.as_integer_ratio()
                units = n << (_UNIT_BITS + 1 - d.bit_length())
            except (OverflowError, ValueError):  # inf / nan: the contract rejects them; never in a sum
                pass
        else:
            units = _amount_units(amount)
        slot = _FAILED if get("status") == "failed" else _REFUNDS if get("type") == "refund" else _SALES
        alerted = get("alert_flag") is True
        late = get("late") is True
        minute = (et.year, et.month, et.day, et.hour, et.minute)  # cheaper than datetime.replace
        loc, prod, cat, pay, val = (get("location"), get("product"), get("category"), get("payment_method"),
                                    get("value_category"))
        if loc.__class__ is not str:
            loc = _key(loc)
        if prod.__class__ is not str:
            prod = _key(prod)
        if cat.__class__ is not str:
            cat = _key(cat)
        if pay.__class__ is not str:
            pay = _key(pay)
        if val.__class__ is not str:
            val = _key(val)
        hour = minute[:4]
        cell = (hour, loc, prod, cat, pay, val)  # the hour, then CUBE_DIMS in order
        a = self.minutes.get(minute)
        if a is None:
            a = self.minutes[minute] = [0] * _SLOTS
        b = self.cells.get(cell)
        if b is None:
            b = self.cells[cell] = [0] * _SLOTS
        user = get("user_id")
        if user.__class__ is not str:
            user = _key(user)
        k = (minute, pay)
        p = self.pays.get(k)
        if p is None:
            p = self.pays[k] = [0, 0, None]
        p[0] += 1
        if slot == _SALES:
            k = (hour, user)
            self.orders[k] = self.orders.get(k, 0) + 1
            if units is not None:
                self.spent[k] = self.spent.get(k, 0) + units
            if not alerted:  # trends count sales the fraud rules let through: a burst of one user is no trend
                k = (minute, prod, loc, user)
                self.sales[k] = self.sales.get(k, 0) + 1
        elif slot == _FAILED:  # failures from many users are an outage; from one, card testing
            p[1] += 1
            if p[2] is None:
                p[2] = set()
            p[2].add(user)
        a[_N] += 1
        b[_N] += 1
        a[slot] += 1
        b[slot] += 1
        if alerted:
            a[_ALERTED] += 1
            b[_ALERTED] += 1
        if late:
            a[_LATE] += 1
            b[_LATE] += 1
        if units is not None:
            a[_NUMERIC] += 1
            b[_NUMERIC] += 1
            a[_AMOUNT] += units
            b[_AMOUNT] += units
            if slot == _SALES:
                a[_REVENUE] += units
                b[_REVENUE] += units
            elif slot == _REFUNDS:
                a[_REFUNDED] += units
                b[_REFUNDED] += units

    def groups(self, rollup: Rollup) -> dict[tuple[Any, ...], list[int]]:
        """(bucket, *keys) -> accumulator, for one transaction rollup (minute or hour grain)."""
        if rollup.grain == "minute":
            if rollup.keys:
                raise ValueError(f"{rollup.collection}: the minute cube has no dimensions")
            return {(_time(m),): acc for m, acc in self.minutes.items()}
        if rollup.grain != "hour" or not set(rollup.keys) <= set(CUBE_DIMS):
            raise ValueError(f"{rollup.collection}: not derivable from the hourly cube over {CUBE_DIMS}")
        positions = [1 + CUBE_DIMS.index(k) for k in rollup.keys]
        pick = operator.itemgetter(0, *positions) if positions else lambda cell: (cell[0],)
        merged: dict[tuple[Any, ...], list[int]] = {}
        for cell, acc in self.cells.items():
            key = pick(cell)
            target = merged.get(key)
            if target is None:
                merged[key] = list(acc)
            else:
                target[:] = map(operator.add, target, acc)
        return {(_time(key[0]), *key[1:]): acc for key, acc in merged.items()}

    def buyers_by_hour(self) -> dict[tuple[dt.datetime, Any], list[int]]:
        """(hour, user_id) -> [orders, revenue units] of successful purchases (src/txnmon/core/customers.py)."""
        spent, times = self.spent, {}
        out = {}
        for key, n in self.orders.items():
            hour = key[0]
            at = times.get(hour)
            if at is None:
                at = times[hour] = _time(hour)
            out[(at, key[1])] = [n, spent.get(key, 0)]
        return out

    def signal_cells(self) -> dict[tuple[int, ...], SignalCell]:
        """The minutes merged into 5-minute buckets."""
        fives: dict[tuple[int, ...], SignalCell] = {}

        def cell_of(minute: tuple[int, ...]) -> SignalCell:
            five = (*minute[:4], minute[4] - minute[4] % SIGNAL_BUCKET_MINUTES)
            cell = fives.get(five)
            if cell is None:
                cell = fives[five] = SignalCell()
            return cell

        for (minute, pay), (n, failed, users) in self.pays.items():
            acc = cell_of(minute).payment.setdefault(pay, [0, 0, set()])
            acc[0] += n
            acc[1] += failed
            if users:
                acc[2] |= users
        for (minute, prod, loc, user), n in self.sales.items():
            cell = cell_of(minute)
            for counts, key in ((cell.products, prod), (cell.locations, loc)):
                acc = counts.get(key)
                if acc is None:
                    acc = counts[key] = [0, set()]
                acc[0] += n
                acc[1].add(user)
        return fives

    def hours(self) -> set[str]:
        """The event-time hours the cube holds, as HOUR_FMT text."""
        return {_time(cell[0]).strftime(HOUR_FMT) for cell in self.cells}

    def rows(self, rollup: Rollup) -> list[dict[str, Any]]:
        """The documents of `rollup` for every bucket the cube holds."""
        if rollup.grain == "5min":
            return [signal_document(rollup, _time(five), cell) for five, cell in self.signal_cells().items()]
        return [tx_document(rollup, key, acc) for key, acc in self.groups(rollup).items()]


class SignalCell:
    """One 5-minute event-time bucket: per payment method [transactions, failed, users with a failure],
    per product and per city [sales, buyers] of the successful purchases no fraud rule flagged."""

    __slots__ = ("locations", "payment", "products")

    def __init__(self) -> None:
        self.payment: dict[Any, list[Any]] = {}
        self.products: dict[Any, list[Any]] = {}  # product -> [sales, set of buyers]
        self.locations: dict[Any, list[Any]] = {}


# --- the documents -----------------------------------------------------------------------------


def _fields(rollup: Rollup, key: Sequence[Any]) -> dict[str, Any]:
    return {"_id": rollup_id(rollup, key), GRAIN_FIELD[rollup.grain]: key[0],
            **dict(zip(rollup.keys, key[1:], strict=True))}


def _sort_key(value: Any) -> tuple[str, str]:
    return (type(value).__name__, str(value))


def signal_document(rollup: Rollup, bucket: dt.datetime, cell: SignalCell) -> dict[str, Any]:
    """A kpi_signals_5min document: lists of small documents (keys are data, never field names, so a
    product called "a.b" or "$x" is stored as it is), each sorted by its key so reruns write equal ones."""
    payment = [{"payment_method": k, "transactions": n, "failed_payments": failed,
                "failed_users": len(users) if users else 0, "failure_rate": failed / n}
               for k, (n, failed, users) in sorted(cell.payment.items(), key=lambda kv: _sort_key(kv[0]))]
    return {
        **_fields(rollup, (bucket,)),
        "transactions": sum(p["transactions"] for p in payment),
        "payment": payment,
        "products": [{"product": k, "sales": n, "buyers": len(users)}
                     for k, (n, users) in sorted(cell.products.items(), key=lambda kv: _sort_key(kv[0]))],
        "locations": [{"location": k, "sales": n, "buyers": len(users)}
                      for k, (n, users) in sorted(cell.locations.items(), key=lambda kv: _sort_key(kv[0]))],
    }


def tx_document(rollup: Rollup, key: Sequence[Any], acc: Sequence[int]) -> dict[str, Any]:
    return {
        **_fields(rollup, key),
        "transactions": acc[_N],
        "revenue": from_units(acc[_REVENUE]),
        "sales": acc[_SALES],
        "avg_amount": from_units(acc[_AMOUNT], acc[_NUMERIC]) if acc[_NUMERIC] else None,
        "alerted_transactions": acc[_ALERTED],
        "failed_payments": acc[_FAILED],
        "refunds": acc[_REFUNDS],
        "refund_amount": from_units(acc[_REFUNDED]),
        "late_transactions": acc[_LATE],
    }


# --- the alert cube ----------------------------------------------------------------------------


@dataclass
class AlertCube:
    """Live alerts per (hour, rule, severity): count, exact amount, distinct users."""

    cells: dict[tuple[Any, ...], list[Any]] = field(default_factory=dict)
    read: int = 0
    skipped: int = 0

    def add(self, doc: Mapping[str, Any]) -> None:
        self.read += 1
        et = doc.get("event_time")
        if not isinstance(et, dt.datetime) or doc.get("mode") == "shadow":
            self.skipped += 1
            return
        offset = et.utcoffset()
        if offset:
            et = et - offset
        key = (_time((et.year, et.month, et.day, et.hour)), _key(doc.get("rule")), _key(doc.get("severity")))
        acc = self.cells.get(key)
        if acc is None:
            acc = self.cells[key] = [0, 0, set()]
        acc[0] += 1
        units = _amount_units(doc.get("amount"))
        if units is not None:
            acc[1] += units
        acc[2].add(_key(doc.get("user_id")))

    def hours(self) -> set[str]:
        return {cell[0].strftime(HOUR_FMT) for cell in self.cells}

    def rows(self, rollup: Rollup) -> list[dict[str, Any]]:
        if rollup.source != ALERTS or rollup.grain != "hour" or rollup.keys != ("rule", "severity"):
            raise ValueError(f"{rollup.collection}: not derivable from the alert cube")
        out = []
        for key, (alerts, units, users) in self.cells.items():
            out.append({**_fields(rollup, key), "alerts": alerts, "amount": from_units(units), "users": len(users)})
        return out

