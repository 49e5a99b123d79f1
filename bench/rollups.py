"""KPI rollups benchmark: `python bench/rollups.py N` against the local stack; prints JSON.

Bulk-inserts N stored transactions shaped like the processor's documents (the generator's rows,
`normalise` + `enrich`, the detector's live alerts), in batches of 5,000 with one `touched_hours`
entry per batch, then times:

    full_rebuild     `txnmon rollups --full` (every hour, every pending entry consumed)
    incremental      one new batch touching one hour, then the run that consumes its entry

and reports seconds, seconds per million stored transactions and the passes over `transactions`
each run made (from its `kpi_runs` document). Uses its own database (bench_rollups_<tag>), dropped
at the end. On mongo-java-server every filtered read scans the whole collection, so the incremental
run costs one scan there; on MongoDB the `event_time` index limits it to the touched hour.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from txnmon.adapters.mongo import MongoStore  # noqa: E402
from txnmon.core.batch import content_fingerprint  # noqa: E402
from txnmon.core.collection_names import ALERTS, KPI_RUNS, TOUCHED_HOURS, TRANSACTIONS  # noqa: E402
from txnmon.core.contract import normalise  # noqa: E402
from txnmon.core.enrichment import enrich  # noqa: E402
from txnmon.core.rollups import HOUR_FMT  # noqa: E402
from txnmon.core.rules import Detector, load_rules  # noqa: E402
from txnmon.core.rules.engine import alert_document  # noqa: E402
from txnmon.jobs import rollups  # noqa: E402
from txnmon.settings import Settings, load_settings  # noqa: E402
from txnmon.synthetic.generator import GeneratorSpec, generate  # noqa: E402

BATCH = 5_000


def say(msg: str) -> None:
    print(f"[bench-rollups] {msg}", file=sys.stderr, flush=True)


def stored_documents(settings: Settings, rows: list[dict[str, Any]], detector: Detector | None,
                     processed_time: dt.datetime, first_offset: int = 0
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The processor's documents for these rows: transactions and (with a detector) their live alerts."""
    txs, alerts = [], []
    for offset, row in enumerate(rows, first_offset):
        tx = normalise(row, zone=settings.zone, now=processed_time)
        hits = detector.observe(tx) if detector is not None else []
        doc = enrich(tx, hits, processed_time=processed_time, medium_threshold=settings.value_medium_threshold,
                     high_threshold=settings.value_high_threshold)
        doc["rules_version"] = "bench"
        doc["late"] = False
        doc["content_hash"] = content_fingerprint(tx)
        doc["source"] = {"topic": "transactions.raw", "partition": offset % 3, "offset": offset}
        txs.append(doc)
        alerts.extend(alert_document(tx, h, created_at=processed_time, rules_version="bench")
                      for h in hits if h.mode == "live")
    return txs, alerts


def touched_entry(tag: str, txs: list[dict[str, Any]], acked_at: dt.datetime) -> dict[str, Any]:
    """What the processor's TouchedHoursSink writes after a stored batch."""
    return {"_id": f"bench|{tag}", "hours": sorted({d["event_time"].strftime(HOUR_FMT) for d in txs}),
            "transactions": len(txs), "acked_at": acked_at, "pending": True}


def load(settings: Settings, n: int, days: int, alerts: bool) -> dict[str, Any]:
    """N stored transactions in batches of 5,000, each followed by its touched_hours entry."""
    store = MongoStore(settings)
    store.ensure_indexes()
    frame = generate(GeneratorSpec(rows=n, users=max(n // 10, 1), fraud_rate=0.01, seed=11, days=days))
    detector = Detector(load_rules(settings.rules_file)) if alerts else None
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    stored_alerts = 0
    for first in range(0, n, BATCH):
        rows = frame.iloc[first:first + BATCH].to_dict("records")
        rows = [{k: v for k, v in r.items() if v != ""} for r in rows]
        txs, batch_alerts = stored_documents(settings, rows, detector, now, first)
        store.insert_missing(TRANSACTIONS, txs)
        if batch_alerts:
            store.insert_missing(ALERTS, batch_alerts)
            stored_alerts += len(batch_alerts)
        store.insert_missing(TOUCHED_HOURS, [touched_entry(f"load-{first}", txs, dt.datetime.now(dt.UTC))])
        if (first // BATCH) % 20 == 19:
            say(f"stored {first + len(rows):,} of {n:,} ({time.perf_counter() - started:.0f}s)")
    return {"stored": n, "alerts": stored_alerts, "days": days, "load_s": round(time.perf_counter() - started, 1)}


def timed_run(store: MongoStore, *, full_rebuild: bool) -> dict[str, Any]:
    started = time.perf_counter()
    run = rollups.run_rollups(store, full_rebuild=full_rebuild)
    seconds = time.perf_counter() - started
    doc = store.find_one(KPI_RUNS, {"_id": run.run_id})
    assert doc is not None and doc["success"], doc
    return {"seconds": round(seconds, 2), "hours": len(run.hours), "entries_consumed": run.entries,
            "passes_over_transactions": doc["passes"]["transactions"], "passes": doc["passes"],
            "transactions_read": doc["transactions_read"], "seconds_by_step": doc["seconds_by_step"],
            "documents": run.documents,
            "documents_written": {name: sum(w.values()) for name, w in doc["written"].items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", type=int, nargs="?", default=200_000, help="stored transactions (default 200,000)")
    parser.add_argument("--days", type=int, default=1, help="days of event time the rows spread over (default 1)")
    parser.add_argument("--no-alerts", action="store_true", help="store no alerts (skips the detector)")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    settings = load_settings(mongo_db=f"bench_rollups_{tag}", metrics_port=0)
    store = MongoStore(settings)
    results: dict[str, Any] = {"run_at": dt.datetime.now(dt.UTC).isoformat(), "rows": args.rows,
                               "database": settings.mongo_db}
    try:
        say(f"storing {args.rows:,} transactions over {args.days} day(s)")
        results["load"] = load(settings, args.rows, args.days, not args.no_alerts)
        say(f"stored in {results['load']['load_s']}s; full rebuild")
        full = timed_run(store, full_rebuild=True)
        full["s_per_million"] = round(full["seconds"] * 1_000_000 / args.rows, 1)
        results["full_rebuild"] = full
        say(f"full rebuild {full['seconds']}s ({full['s_per_million']} s per million)")

        again = timed_run(store, full_rebuild=False)
        results["nothing_pending"] = {"seconds": again["seconds"],
                                      "passes_over_transactions": again["passes_over_transactions"]}

        # one late batch: 5,000 transactions inside one event-time hour of the stored day
        hour = dt.datetime(2025, 10, 1, 12, tzinfo=dt.UTC)
        late = [{"transaction_id": f"LATE-{i:06d}", "user_id": f"L{i % 500:04d}", "amount": 100.0 + i % 900,
                 "payment_method": "UPI", "location": "Pune", "timestamp": (hour + dt.timedelta(
                     seconds=i % 3600)).isoformat(), "product": "Novel", "category": "Books"} for i in range(BATCH)]
        txs, _ = stored_documents(settings, late, None, dt.datetime.now(dt.UTC), 10**9)
        store.insert_missing(TRANSACTIONS, txs)
        store.insert_missing(TOUCHED_HOURS, [touched_entry("late", txs, dt.datetime.now(dt.UTC))])
        inc = timed_run(store, full_rebuild=False)
        inc["s_per_million"] = round(inc["seconds"] * 1_000_000 / (args.rows + BATCH), 1)
        results["incremental_one_hour"] = inc
        say(f"incremental (1 hour) {inc['seconds']}s")
        results["target_full_rebuild_s_per_million_le_30"] = full["s_per_million"] <= 30
    finally:
        store.drop()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
