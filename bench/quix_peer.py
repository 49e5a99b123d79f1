"""The peer `make bench` measures txnmon against: a small Quix Streams pipeline doing less of the job.

JSON in from one topic; one stateful count per user (Quix state, RocksDB with its changelog topic) and a
value category (an amount band); every transaction upserted by its id into MongoDB by a `BatchingSink`
(one pymongo `bulk_write` of `UpdateOne(..., upsert=True)` per partition batch, as Quix's own MongoDB
sink does). At-least-once, one hop: no rules, no repartition, no enriched topic, no alerts, no exactly-once.

    python bench/quix_peer.py TOPIC DATABASE EXPECTED   (connection settings from the environment, as txnmon's)

runs until EXPECTED transactions are stored, then prints one JSON line: the count, the seconds from the
first message processed to the write that stored the last of them, and tx/s. bench/run.py runs it on
the same generated transactions as txnmon's e2e figure, on the same broker and store.

quixstreams is a bench-only dependency (`uv sync --group bench`, which `make bench` does): it is
imported inside `run_peer`, so the pure parts below load (and are tested) without it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# upper bounds of the amount bands (the "value category"); above the last one: "very_large"
AMOUNT_BANDS = ((1_000.0, "small"), (10_000.0, "medium"), (50_000.0, "large"))
COUNT_KEY = "transactions"


def amount_band(amount: Any) -> str:
    """The value category of an amount: the first band whose upper bound is above it."""
    value = float(amount)
    for upper, name in AMOUNT_BANDS:
        if value < upper:
            return name
    return "very_large"


def count_and_band(value: dict[str, Any], state: Any) -> dict[str, Any]:
    """The stateful step: this user's running count (kept in `state`, Quix's per-key store; the input
    is keyed by user id) and the amount band, added to the transaction."""
    count = state.get(COUNT_KEY, 0) + 1
    state.set(COUNT_KEY, count)
    return {**value, "user_txn_count": count, "amount_band": amount_band(value["amount"])}


def upsert_requests(values: list[dict[str, Any]]) -> list[Any]:
    """One upsert per transaction, by its id: a redelivery (at-least-once) rewrites the same document."""
    from pymongo import UpdateOne

    return [UpdateOne({"_id": v["transaction_id"]}, {"$set": v}, upsert=True) for v in values]


class Progress:
    """When the first message was processed and when the expected count was stored (perf_counter)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.stored = 0
        self.first_at: float | None = None
        self.done_at: float | None = None

    def seen(self) -> None:
        if self.first_at is None:
            self.first_at = time.perf_counter()

    def wrote(self, n: int) -> bool:
        """Count `n` stored; True once the expected count is reached (the first time it is)."""
        self.stored += n
        if self.done_at is None and self.stored >= self.expected:
            self.done_at = time.perf_counter()
            return True
        return False

    def summary(self) -> dict[str, Any]:
        if self.first_at is None or self.done_at is None:
            return {"stored": self.stored, "expected": self.expected, "finished": False}
        elapsed = self.done_at - self.first_at
        return {"stored": self.stored, "expected": self.expected, "finished": True, "seconds": round(elapsed, 3),
                "tx_per_s": round(self.stored / elapsed) if elapsed > 0 else 0}


def run_peer(topic: str, database: str, expected: int, timeout_s: float = 1800.0,
             commit_every: int = 2_000) -> dict[str, Any]:
    """Run the Quix Streams pipeline on `topic` until `expected` transactions are stored in `database`."""
    from quixstreams import Application
    from quixstreams.kafka.configuration import ConnectionConfig
    from quixstreams.sinks import BatchingSink, SinkBatch

    from txnmon.adapters.kafka import client_config
    from txnmon.adapters.mongo import MongoStore
    from txnmon.core.collection_names import TRANSACTIONS
    from txnmon.settings import load_settings

    settings = load_settings()
    progress = Progress(expected)
    collection = MongoStore(settings, database).collection(TRANSACTIONS)
    # the connection and security options txnmon's own clients use, minus txnmon's client tuning
    connection = ConnectionConfig.from_librdkafka_dict(
        {k: v for k, v in client_config(settings).items()
         if k in ("bootstrap.servers", "security.protocol") or k.startswith(("sasl.", "ssl."))},
        ignore_extras=True)
    state_dir = tempfile.mkdtemp(prefix="txnmon-quix-peer-")
    # commit (and so flush the sink) every 2,000 messages, txnmon's batch size, or every second
    app = Application(broker_address=connection, consumer_group=f"{topic}-quix-peer", auto_offset_reset="earliest",
                      state_dir=state_dir, commit_every=commit_every, commit_interval=1.0, loglevel="WARNING",
                      processing_guarantee="at-least-once")

    class MongoUpsertSink(BatchingSink):
        def write(self, batch: SinkBatch) -> None:
            values = [item.value for item in batch]
            collection.bulk_write(upsert_requests(values), ordered=False)
            if progress.wrote(len(values)):
                app.stop()

    def first_seen(value: dict[str, Any]) -> dict[str, Any]:
        progress.seen()
        return value

    sdf = app.dataframe(app.topic(topic, value_deserializer="json", key_deserializer="str"))
    sdf = sdf.apply(first_seen)
    sdf = sdf.apply(count_and_band, stateful=True)
    sdf.sink(MongoUpsertSink())
    try:
        # `timeout`: stop when nothing new arrives for this long (a stuck run ends with finished: false);
        # collect=False: do not keep every output in memory, which the timed run would pay for
        app.run(timeout=timeout_s, collect=False)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    return progress.summary()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("topic")
    parser.add_argument("database")
    parser.add_argument("expected", type=int)
    parser.add_argument("--idle-timeout", type=float, default=60.0,
                        help="give up when no message arrived for this many seconds")
    args = parser.parse_args()
    result = run_peer(args.topic, args.database, args.expected, args.idle_timeout)
    print(json.dumps(result), flush=True)
    return 0 if result["finished"] else 1


if __name__ == "__main__":
    sys.exit(main())
