"""The `decisions` step of `make bench`: `POST /v1/decisions` at a steady offered rate (200/s by default)
against `txnmon serve`, with `txnmon stream` running its usual batches, each in its own process as deployed.
Latency is the client's, from the send to the verdict (send to Kafka, the processor's batch, the stored
verdict read back by the API's poller). Every 50th transaction is a high amount (a `decline`).

    python bench/decisions.py [--rate 200] [--seconds 20]     (run.py runs it as the `decisions` step)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import queue
import statistics
import subprocess
import sys
import threading
import time
import uuid
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.scale_out import TXNMON, member_env  # noqa: E402
from bench.steps import StepFailed, percentile  # noqa: E402
from txnmon.adapters import kafka  # noqa: E402
from txnmon.adapters.mongo import MongoStore  # noqa: E402
from txnmon.jobs import api_keys  # noqa: E402
from txnmon.settings import Settings, load_settings  # noqa: E402

BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _row(prefix: str, i: int) -> dict[str, Any]:
    return {"transaction_id": f"{prefix}{i:07d}", "user_id": f"{prefix}U{i % 5000:05d}",
            "amount": 75_000 if i % 50 == 0 else 900, "payment_method": "UPI", "location": "Mumbai",
            "timestamp": (BASE + dt.timedelta(seconds=i)).isoformat()}


def _offer(port: int, key: str, rate: int, total: int, prefix: str, wait_ms: int,
           workers: int = 128) -> list[tuple[float, int, str]]:
    """`total` decisions at `rate` per second; (latency ms, status, decision) each. Latency counts from when
    a request was due, so a client that falls behind shows it (no coordinated omission). Plain blocking
    connections on threads: an httpx async client stalled here with 2,000 requests queued (the client busy,
    the server idle)."""
    due: queue.Queue[tuple[int, float] | None] = queue.Queue()
    results: list[tuple[float, int, str]] = []
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def worker() -> None:
        http = HTTPConnection("127.0.0.1", port, timeout=wait_ms / 1000 + 30)
        while (item := due.get()) is not None:
            i, at = item
            try:
                http.request("POST", f"/v1/decisions?wait_ms={wait_ms}", json.dumps(_row(prefix, i)), headers)
                r = http.getresponse()
                answer = json.loads(r.read())
                results.append(((time.perf_counter() - at) * 1000, r.status,
                                 answer.get("decision", answer.get("error", ""))))
            except (OSError, ValueError, HTTPException) as exc:
                results.append(((time.perf_counter() - at) * 1000, 0, type(exc).__name__))
                http.close()
                http = HTTPConnection("127.0.0.1", port, timeout=wait_ms / 1000 + 30)
        http.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    for i in range(total):
        at = start + i / rate
        while (now := time.perf_counter()) < at:
            time.sleep(min(at - now, 0.002))
        due.put((i, at))
    for _ in threads:
        due.put(None)
    for t in threads:
        t.join(wait_ms / 1000 + 60)
    return results


def _warm_up(url: str, key: str, prefix: str, timeout: float = 120.0) -> None:
    """Until the server answers and the processor has joined and judges: one decision answered 200."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        i = 0
        while time.monotonic() < deadline:
            try:
                r = http.post("/v1/decisions?wait_ms=5000", json=_row(prefix + "warm", i))
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
            i += 1
    raise StepFailed(f"no verdict within {timeout:.0f}s of starting the API and the processor")


def decision_latency(settings: Settings, rate: int, seconds: int, wait_ms: int = 5000) -> dict[str, Any]:
    """The step's figures; `settings` name an isolated run (topics created, a free API port)."""
    store = MongoStore(settings)
    store.ensure_indexes()
    key = api_keys.create(store, "bench", by="bench")
    env = member_env(settings)
    url = f"http://127.0.0.1:{settings.api_port}"
    procs = [subprocess.Popen([TXNMON, "stream"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL),
             subprocess.Popen([TXNMON, "serve"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        _warm_up(url, key, "D")
        started = time.perf_counter()
        results = _offer(settings.api_port, key, rate, rate * seconds, "D", wait_ms)
        elapsed = time.perf_counter() - started
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        store.close()
    judged = sorted(ms for ms, status, _ in results if status == 200)
    if not judged:
        raise StepFailed(f"no decision was answered with a verdict ({len(results)} sent)")
    outcomes: dict[str, int] = {}
    for _, status, decision in results:
        outcomes[f"{status} {decision}"] = outcomes.get(f"{status} {decision}", 0) + 1
    return {"decision_latency_p50_ms": round(statistics.median(judged), 1),
            "decision_latency_p99_ms": round(percentile(judged, 0.99), 1),
            "decision_latency_samples": len(judged), "decision_offered_per_s": rate,
            "decision_answered_per_s": round(len(results) / elapsed, 1), "decision_outcomes": outcomes}


def run(tag: str, rate: int, seconds: int, port: int) -> dict[str, Any]:
    """One isolated run: its own topics and database, dropped afterwards."""
    s = load_settings(topic_raw=f"bench-{tag}.raw", topic_enriched=f"bench-{tag}.enriched",
                      topic_dlq=f"bench-{tag}.dlq", topic_by_user=f"bench-{tag}.by_user",
                      topic_state=f"bench-{tag}.state", consumer_group=f"bench-{tag}", mongo_db=f"bench_{tag}",
                      metrics_port=0, api_port=port, api_rate_per_second=100_000, api_rate_burst=1_000_000)
    kafka.ensure_topics(s)
    try:
        return decision_latency(s, rate, seconds)
    finally:
        MongoStore(s, s.mongo_db).drop()
        kafka.delete_topics(s, list(s.pipeline_topics))


def main() -> int:
    import socket

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    print(json.dumps(run(uuid.uuid4().hex[:8], args.rate, args.seconds, port), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
