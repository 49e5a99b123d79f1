"""Where an alert's latency goes: the alert-latency step's load, with each stage of the processor timed.

    python bench/latency_stages.py [--rate 1100] [--seconds 20] [--slowest 10]

`make bench`'s `alert_latency` step gives one figure, send to alert readable on `transactions.enriched`;
its p99 is set by the worst 1% of a few hundred alerts. This runs the same steady load (every 50th
transaction a high amount, bench/run.py's `offer_steady_load`) against a processor in this process whose
batches are timed stage by stage (its poll, routing, judging, the MongoDB writes, the Kafka transaction),
and splits each alert's latency where its transaction crossed them:

    to raw batch     send -> the start of the batch that routed it (the broker, the poll, a batch before it)
    raw batch        that batch: routing, its MongoDB rejects, its Kafka transaction
    to judging       its end -> the start of the batch that judged the by-user copy (the commit made
                     visible, the fetch, BY_USER_LINGER_MS)
    judging batch    that batch: `process_batch`, the MongoDB writes, the Kafka transaction (stages below)
    to reader        its end -> the enriched event read (read_committed) by this process's consumer

It prints the percentiles of each part over every alert after the warm-up, then the slowest alerts one by
one with their batches' stages. A diagnostic: the instrumentation is a wrapper around the processor's
functions (nothing in src/ changes), and the processor runs in a thread of this process as the step could
(`--latency-in-thread`), so the figures are comparable with that way, not measured by `make bench`.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import LATENCY_WARMUP_S, isolated_settings, running_processor, sent_and_read  # noqa: E402
from bench.steps import percentile  # noqa: E402
from txnmon.adapters import kafka  # noqa: E402
from txnmon.adapters.mongo import MongoStore  # noqa: E402
from txnmon.services import processor as processor_module  # noqa: E402
from txnmon.services.processor import Processor  # noqa: E402
from txnmon.services.wiring import kafka_and_mongo  # noqa: E402

_ALERTING = re.compile(rb'"transaction_id": "(L\d+)"[^}]*"amount": 75000')


@dataclass
class Batch:
    """One `Processor.handle` call, its stages' end times (perf_counter) and the alerting ids it carried."""

    start: float
    raw_ids: list[str]
    by_user_ids: list[str]
    n_raw: int
    n_by_user: int
    marks: dict[str, float] = field(default_factory=dict)
    end: float = 0.0


class Tracer:
    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.current: Batch | None = None

    def mark(self, stage: str) -> None:
        if self.current is not None:
            self.current.marks[stage] = time.perf_counter()


def _ids(records: list[Any], topic: str) -> list[str]:
    out: list[str] = []
    for r in records:
        if r.topic == topic and (m := _ALERTING.search(r.value or b"")):
            out.append(m.group(1).decode())
    return out


def instrument(processor: Processor, tracer: Tracer) -> None:
    """Wrap the processor's stages (on this instance and the module's names it calls) to time them."""
    s = processor.settings
    handle = processor.handle

    def timed_handle(records: list[Any], wired: Any) -> Any:
        tracer.current = Batch(time.perf_counter(), _ids(records, s.topic_raw), _ids(records, s.topic_by_user),
                               sum(r.topic == s.topic_raw for r in records),
                               sum(r.topic == s.topic_by_user for r in records))
        try:
            return handle(records, wired)
        finally:
            tracer.current.end = time.perf_counter()
            tracer.batches.append(tracer.current)
            tracer.current = None

    processor.handle = timed_handle  # type: ignore[method-assign]

    def after(name: str, stage: str) -> None:
        inner = getattr(processor_module, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return inner(*args, **kwargs)
            finally:
                tracer.mark(stage)

        setattr(processor_module, name, wrapper)

    after("route_batch", "routed")
    after("process_batch", "judged")
    after("state_messages", "state")

    real_write = processor_module.write_batch

    def write(result: Any, sinks: Any, **kw: Any) -> Any:
        try:
            return real_write(result, sinks, **kw)
        finally:
            if tracer.current is not None and "judged" not in tracer.current.marks:
                tracer.mark("rejects written")

    processor_module.write_batch = write  # type: ignore[assignment]


def wiring(tracer: Tracer) -> Any:
    def wire(processor: Processor) -> Any:
        wired = kafka_and_mongo(processor)
        publish = wired.publisher.publish

        def timed_publish(out: Any, offsets: Any) -> None:
            try:
                publish(out, offsets)
            finally:
                tracer.mark("committed")

        wired.publisher.publish = timed_publish
        for sink in wired.sinks:
            _time_sink(sink, tracer)
        return wired

    return wire


def _time_sink(sink: Any, tracer: Tracer) -> None:
    write = sink.write

    def timed(batch: Any) -> Any:
        try:
            return write(batch)
        finally:
            tracer.mark(stage)

    stage = f"{type(sink).__name__} written"
    while stage in SINK_STAGES:  # two sinks of one class: told apart
        stage += "'"
    sink.write = timed
    SINK_STAGES.append(stage)


SINK_STAGES: list[str] = []
STAGES = ("routed", "rejects written", "judged", "state", "committed")


def stages_of(b: Batch) -> str:
    parts, last = [], b.start
    for stage in (*STAGES[:3], *SINK_STAGES, *STAGES[3:]):
        if b.marks.get(stage, last) - last >= 0.0005:  # stages under half a millisecond left out
            parts.append(f"{stage} +{(b.marks[stage] - last) * 1000:.0f}")
            last = b.marks[stage]
    return ", ".join(parts) + f" (raw {b.n_raw}, by-user {b.n_by_user})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=int, default=1100, help="transactions a second (default 1100, half of e2e here)")
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--slowest", type=int, default=10, help="alerts printed one by one")
    args = p.parse_args(argv)
    settings = isolated_settings(f"stages{int(time.time())}")
    kafka.ensure_topics(settings)
    tracer = Tracer()
    processor = Processor(settings, wiring=wiring(tracer))
    instrument(processor, tracer)
    try:
        with running_processor(settings, True, processor):
            sent_at, found, start = sent_and_read(settings, args.rate, args.seconds, LATENCY_WARMUP_S)
        report(tracer, sent_at, found, start + LATENCY_WARMUP_S, args.slowest)
    finally:
        MongoStore(settings, settings.mongo_db).drop()
        kafka.delete_topics(settings, list(settings.pipeline_topics))
    return 0


@dataclass
class Traced:
    """One alert's latency (ms), split where its transaction crossed the processor's batches."""

    transaction_id: str
    total_ms: float
    parts: dict[str, float]
    routed_in: Batch
    judged_in: Batch


def split(batches: list[Batch], sent_at: dict[str, float], found: dict[str, float], steady: float) -> list[Traced]:
    """The alerts sent from `steady` on and read back, slowest last, each split into PARTS (the module's doc);
    one not routed or not judged in a traced batch is left out."""
    routed = {tid: b for b in batches for tid in b.raw_ids}
    judged = {tid: b for b in batches for tid in b.by_user_ids}
    out = []
    for tid, sent in sent_at.items():
        if sent < steady or tid not in found or tid not in routed or tid not in judged:
            continue
        r, j = routed[tid], judged[tid]
        parts = dict(zip(PARTS, ((r.start - sent) * 1000, (r.end - r.start) * 1000, (j.start - r.end) * 1000,
                                 (j.end - j.start) * 1000, (found[tid] - j.end) * 1000), strict=True))
        out.append(Traced(tid, (found[tid] - sent) * 1000, parts, r, j))
    return sorted(out, key=lambda t: t.total_ms)


PARTS = ("to raw batch", "raw batch", "to judging", "judging batch", "to reader")


def report(tracer: Tracer, sent_at: dict[str, float], found: dict[str, float], steady: float, slowest: int) -> None:
    rows = split(tracer.batches, sent_at, found, steady)
    if not rows:
        print("no alert was traced")
        return
    total = [t.total_ms for t in rows]
    print(f"{len(rows)} alerts; total p50 {percentile(total, 0.5):.0f} ms, p99 {percentile(total, 0.99):.0f}, "
          f"max {total[-1]:.0f}; {len(tracer.batches)} batches")
    for part in PARTS:
        values = [t.parts[part] for t in rows]
        print(f"  {part:14} p50 {percentile(values, 0.5):6.0f}  p90 {percentile(values, 0.9):6.0f}  "
              f"p99 {percentile(values, 0.99):6.0f}  max {max(values):6.0f} ms")
    durations = [(b.end - b.start) * 1000 for b in tracer.batches]
    print(f"  batches: p50 {percentile(durations, 0.5):.0f} ms, p99 {percentile(durations, 0.99):.0f}, "
          f"max {max(durations):.0f}")
    print(f"slowest {slowest}:")
    for t in rows[-slowest:]:
        print(f"  {t.transaction_id} {t.total_ms:.0f} ms: " + ", ".join(f"{k} {v:.0f}" for k, v in t.parts.items()))
        print(f"     raw batch: {stages_of(t.routed_in)}")
        print(f"     judging batch: {stages_of(t.judged_in)}")


if __name__ == "__main__":
    raise SystemExit(main())
