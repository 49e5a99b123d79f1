"""The order the sinks of a judged batch run in, declared once as data, for the processor and the
window replay.

Why this order:
- `transactions` first: a refused or conflicting transaction becomes a DLQ record before anything
  of it (alerts, cases, notifications) is written;
- live, the outbox (`notifications`) right after the alerts, both before the offsets are committed,
  so a crash redoes both or neither is needed;
- a replay routes only alerts not stored yet (`new_notifications`), so that must run BEFORE the alerts
  are stored (see NotificationsSink), and it leaves the live watermarks alone;
- `touched_hours` after the data it points at, so whoever sees an entry sees its data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from txnmon.adapters.mongo import MongoStore
from txnmon.pipeline.case_sink import CasesSink
from txnmon.pipeline.ports import Sink
from txnmon.pipeline.sinks import (
    AlertsSink,
    NotificationsSink,
    RejectedSink,
    RoutesSource,
    TouchedHoursSink,
    TransactionsSink,
    WatermarkSink,
)
from txnmon.pipeline.write_ahead import WriteAhead

LIVE = ("transactions", "rejected", "alerts", "notifications", "cases", "touched_hours", "watermarks")
REPLAY = ("transactions", "rejected", "new_notifications", "alerts", "cases", "touched_hours")
ROUTED = ("rejected",)  # the raw messages rejected while re-keying: nothing was judged

NOTIFYING = frozenset({"notifications", "new_notifications"})


def build_sinks(order: Sequence[str], store: MongoStore, *, routes: RoutesSource | None = None,
                watermark_topic: str | None = None, ahead: WriteAhead | None = None) -> list[Sink]:
    """The sinks of `order`, on `store`. Without routes the notification sinks are left out (a replay
    with --no-notify); the watermark sink needs the topic whose partitions it records; `ahead`: the
    processor's transactions written while judging, which the transactions sink then does not write."""
    makers: dict[str, Callable[[], Sink]] = {
        "transactions": lambda: TransactionsSink(store, ahead),
        "rejected": lambda: RejectedSink(store),
        "alerts": lambda: AlertsSink(store),
        "notifications": lambda: NotificationsSink(store, routes),  # type: ignore[arg-type]
        "new_notifications": lambda: NotificationsSink(store, routes, only_new=True),  # type: ignore[arg-type]
        "cases": lambda: CasesSink(store),
        "touched_hours": lambda: TouchedHoursSink(store),
        "watermarks": lambda: WatermarkSink(store, watermark_topic or ""),
    }
    unknown = [name for name in order if name not in makers]
    if unknown:
        raise ValueError(f"unknown sink(s) {unknown}; known: {sorted(makers)}")
    if "watermarks" in order and not watermark_topic:
        raise ValueError("the watermarks sink needs watermark_topic")
    return [makers[name]() for name in order if routes is not None or name not in NOTIFYING]
