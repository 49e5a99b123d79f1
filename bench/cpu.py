"""CPU µs per transaction of the processor's hot path, in-process: no Kafka, no MongoDB.

    python bench/cpu.py [--rows N] [--batch 2000]   (prints JSON; `make bench` runs it as its "cpu" step)

What `Processor.handle` does to a batch, minus the I/O, with the project's own functions: `route_batch`
on the raw records (decode, validate, re-key, the valid ones kept in the processor's `Handoff`), the
re-keyed messages as by-user records, `process_batch` (each taken from the handoff instead of parsed
again, as the live processor does when it judges what it routed; rules, fingerprint, enrichment, the
enriched JSON), the changelog values
of the users the batch touched (`state_messages`), and the BSON encoding of the documents the store
would be sent (what pymongo pays on the client). The sinks' bookkeeping (cases, audit, outbox) is left
out. Timed with this thread's CPU clock over the second half of the input only, so every timed event
meets the history the first half built, at two history lengths from the bench's generator:

    1 day    n/10 users, 10 events each in one day (what `make bench`'s e2e data is)
    30 days  n/40 users, 40 events each over 30 days

The processor's garbage-collector policy (src/txnmon/services/collector.py) is applied after the input is
built, as `txnmon stream` applies it after start-up; `--python-gc` measures with Python's defaults instead
(how this bench measured before that policy, so both can be compared in one session).

`--model`: the same with a promoted risk model (issue 32): a LightGBM model of the production settings
(src/txnmon/core/boosting.py, 100 rounds) fitted on another labelled generated day, and the shipped rules
plus a typology weighing its `model_score` signal, so each batch is also featurised, scored in one call
and the high scores explained (src/txnmon/core/scoring.py). Run both, in one session, to compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import sys
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bson  # noqa: E402

from txnmon.core.batch import BatchConfig, process_batch, route_batch  # noqa: E402
from txnmon.core.handoff import Handoff  # noqa: E402
from txnmon.core.records import SourceRecord  # noqa: E402
from txnmon.core.rules import Detector, load_rules, parse_rules  # noqa: E402
from txnmon.core.scoring import worth_scoring  # noqa: E402
from txnmon.core.state_codec import state_messages  # noqa: E402
from txnmon.core.watermark import Watermarks  # noqa: E402
from txnmon.services.collector import tune_collector  # noqa: E402
from txnmon.settings import load_settings  # noqa: E402
from txnmon.synthetic.generator import GeneratorSpec, generate  # noqa: E402

RAW, BY_USER = "bench.raw", "bench.by_user"
PARTITIONS = 3
# history length -> (days the generator spreads the rows over, events per user)
HISTORIES = {"1d": (1, 10), "30d": (30, 40)}
STAGES = ("route", "judge", "state", "bson")
# --model: the model's signal weighed as the docs suggest (docs/model.md)
MODEL_TYPOLOGY = """
  learned_risk:
    signals: {model_score: 100}
    thresholds: {medium: 100}
"""


def history_rows(n: int, days: int, per_user: int) -> list[dict[str, Any]]:
    rows = generate(GeneratorSpec(rows=n, users=max(n // per_user, 1), fraud_rate=0.01, seed=11,
                                  days=days)).to_dict("records")
    return [{k: v for k, v in r.items() if v != ""} for r in rows]


def raw_records(rows: Iterable[dict[str, Any]], partitions: int = PARTITIONS) -> list[SourceRecord]:
    """The rows as the raw topic would hold them: JSON, keyed by user, on a partition by key."""
    out, offsets = [], [0] * partitions
    for row in rows:
        key = str(row["user_id"]).encode()
        p = zlib.crc32(key) % partitions
        out.append(SourceRecord(RAW, p, offsets[p], key, json.dumps(row).encode(), 0))
        offsets[p] += 1
    return out


class HotPath:
    """One processor's in-memory part: the detector, watermarks and user -> partition map it keeps."""

    def __init__(self, settings: Any, model: Any = None, weighed: bool = True) -> None:
        self.config = BatchConfig.from_settings(settings)
        rules = parse_rules(Path(settings.rules_file).read_text() + MODEL_TYPOLOGY) if model is not None and weighed \
            else load_rules(settings.rules_file)
        self.detector = Detector(rules, unbounded_users=True)
        # as the processor: a model no typology weighs is not run (unless MODEL_SHADOW_SCORING)
        self.model = model if model is not None and worth_scoring(self.detector, settings.model_shadow_scoring) \
            else None
        self.detector.state.track_dropped = True
        self.watermarks = Watermarks()
        self.handoff = Handoff(max(10 * settings.batch_max_records, 1_000))  # as the Processor sizes it
        self.partition_of: dict[str, int] = {}
        self.offsets = [0] * PARTITIONS

    def batch(self, records: list[SourceRecord], now: dt.datetime, spent: dict[str, float] | None) -> int:
        """One batch through every stage; CPU seconds per stage added to `spent` (None: not timed)."""
        clock = time.thread_time
        t0 = clock()
        routed = route_batch(records, self.config, now=now, rules_version=self.detector.version,
                             handoff=self.handoff)
        by_user = []
        for key, value, headers in routed.forward:
            p = zlib.crc32(key) % PARTITIONS
            by_user.append(SourceRecord(BY_USER, p, self.offsets[p], key, value, 0, tuple(headers)))
            self.offsets[p] += 1
        t1 = clock()
        result = process_batch(by_user, self.detector, self.config, now=now, load_state=lambda users: {},
                               watermarks=self.watermarks, handoff=self.handoff, model=self.model)
        t2 = clock()
        for tid, judgement in result.judgements.items():
            self.partition_of[judgement.user_id] = result.originals[tid].partition
        touched = {j.user_id for j in result.judgements.values()}
        dropped = self.detector.state.take_dropped()
        changelog = state_messages(self.detector.export_packed(touched), dropped, self.partition_of)
        for user in dropped:
            self.partition_of.pop(user, None)
        t3 = clock()
        encoded = sum(len(bson.encode(d)) for d in (*result.transactions, *result.alerts))
        t4 = clock()
        if spent is not None:
            for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                spent[stage] += seconds
        assert encoded and changelog, "a batch that stored nothing measures nothing"
        return len(result.transactions)


def bench_model(rows: int = 20_000) -> Any:
    """A model as `txnmon models train` makes it (100 rounds, one thread), fitted on a labelled day
    other than the measured ones; loaded as the processor holds it."""
    from txnmon.core import boosting, risk_model
    from txnmon.core.backtest import normalise_rows
    from txnmon.jobs.models import LoadedModel

    settings = load_settings(metrics_port=0)
    frame = generate(GeneratorSpec(rows=rows, users=rows // 10, fraud_rate=0.02, seed=12))
    txs, _ = normalise_rows(frame.astype(str).to_dict("records"), settings.zone)
    data = risk_model.training_set(txs, load_rules(settings.rules_file))
    return LoadedModel("rm-bench", boosting.fit(data.rows, data.labels), {})


def cpu_per_transaction(rows: list[dict[str, Any]], batch: int = 2_000, model: Any = None,
                        weighed: bool = True, processor_gc: bool = True) -> dict[str, Any]:
    """µs of CPU per transaction over the second half of `rows`, in total and per stage; `processor_gc`:
    with the processor's collector policy (False: Python's defaults, as this bench ran before)."""
    path = HotPath(load_settings(metrics_port=0), model, weighed)
    records = raw_records(rows)
    now = dt.datetime.now(dt.UTC)
    timed_from = len(records) // 2
    spent = dict.fromkeys(STAGES, 0.0)
    timed = 0
    thresholds = gc.get_threshold()
    if processor_gc:
        tune_collector()  # as `txnmon stream` does after start-up (src/txnmon/services/collector.py)
    try:
        for i in range(0, len(records), batch):
            measuring = i >= timed_from
            path.batch(records[i:i + batch], now, spent if measuring else None)
            timed += len(records[i:i + batch]) if measuring else 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    per_tx = {stage: round(seconds * 1e6 / max(timed, 1), 1) for stage, seconds in spent.items()}
    return {"us_per_tx": round(sum(spent.values()) * 1e6 / max(timed, 1), 1), "stages_us_per_tx": per_tx,
            "timed_transactions": timed, "users": len({r["user_id"] for r in rows})}


def cpu_figures(n: int, batch: int = 2_000, model: Any = None, weighed: bool = True,
                processor_gc: bool = True) -> dict[str, Any]:
    """`make bench`'s figures: µs per transaction at both history lengths, and the stages of each."""
    out: dict[str, Any] = {"cpu_rows": n, "cpu_batch": batch}
    for name, (days, per_user) in HISTORIES.items():
        measured = cpu_per_transaction(history_rows(n, days, per_user), batch, model, weighed, processor_gc)
        out[f"cpu_us_per_tx_{name}"] = measured["us_per_tx"]
        out[f"cpu_stages_{name}"] = measured["stages_us_per_tx"]
    return out


# issue 32: a promoted model's scoring adds at most this much to the hot path's CPU per transaction
MODEL_COST_TARGET = 0.10


def model_figures(n: int, without: dict[str, Any], batch: int = 2_000) -> dict[str, Any]:
    """`make bench`'s "cpu_model" step: the hot path with a promoted model weighed (`bench_model`), and what
    scoring adds to it: with / without - 1. Two runs from one run to the next differ by more than the target
    itself (10-20% on a shared machine), so the model's runs alternate with runs without it (with, without,
    with, without, with) and each side counts its least, the "cpu" step's figure (`without`, same run) among
    those without."""
    model = bench_model()
    out: dict[str, Any] = {}
    for name, (days, per_user) in HISTORIES.items():
        rows = history_rows(n, days, per_user)
        runs, plain = [], []
        for i in range(5):
            if i % 2:
                plain.append(cpu_per_transaction(rows, batch)["us_per_tx"])
            else:
                runs.append(cpu_per_transaction(rows, batch, model))
        best = min(runs, key=lambda measured: measured["us_per_tx"])
        out[f"cpu_model_us_per_tx_{name}"] = best["us_per_tx"]
        out[f"cpu_model_stages_{name}"] = best["stages_us_per_tx"]
        out[f"cpu_model_runs_{name}"] = {"with": [m["us_per_tx"] for m in runs], "without": plain}
        before = [v for v in (without.get(f"cpu_us_per_tx_{name}"), *plain) if v]
        if before:
            out[f"model_cost_{name}"] = round(best["us_per_tx"] / min(before) - 1, 3)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--model", action="store_true", help="with a promoted risk model and its signal weighed")
    parser.add_argument("--unweighed", action="store_true",
                        help="with --model: the shipped rules alone (no typology weighs model_score), as shipped")
    parser.add_argument("--python-gc", action="store_true",
                        help="Python's collector defaults instead of the processor's policy (as measured before it)")
    args = parser.parse_args()
    model = bench_model() if args.model else None
    print(json.dumps(cpu_figures(args.rows, args.batch, model, not args.unweighed, not args.python_gc), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
