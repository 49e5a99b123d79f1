"""Ingest throughput of `txnmon serve`: one service process on a real socket against the running stack,
several concurrent clients posting batches to `POST /v1/transactions`; records/s, and a check that every
accepted record is on the raw topic exactly once (counted by transaction id).

    PYTHONPATH=src:. python bench/api_ingest.py --batches 60 --batch-size 1000 --clients 4
    PYTHONPATH=src:. python bench/api_ingest.py --serve-src /path/to/other/src   # time another tree's service

The bodies are encoded before the clock starts (the clients' JSON is not what is measured). Only the
service process is timed code; the clients share the machine, so compare runs of one session as ratios.
`--serve-src` runs the service from another source tree (e.g. main's) with the same client and checks:
a before/after from one session.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from txnmon.adapters import kafka  # noqa: E402
from txnmon.adapters.mongo import MongoStore  # noqa: E402
from txnmon.jobs import api_keys  # noqa: E402
from txnmon.settings import Settings, load_settings  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bodies(tag: str, batches: int, size: int) -> list[bytes]:
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
    return [json.dumps({"transactions": [
        {"transaction_id": f"{tag}-{b}-{i}", "user_id": f"u{(b * size + i) % 5000}", "amount": 10.5 + i % 300,
         "currency": "EUR", "payment_method": "card", "location": "Paris", "timestamp": at,
         "product_category": "books", "status": "success"} for i in range(size)]}).encode()
        for b in range(batches)]


def _service(settings: Settings, serve_src: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": f"{serve_src}{os.pathsep}{ROOT}", "API_PORT": str(port),
           "API_HOST": "127.0.0.1", "TOPIC_RAW": settings.topic_raw, "MONGO_DB": settings.mongo_db,
           "API_RATE_PER_SECOND": "100000", "API_RATE_BURST": "100000", "LOG_FORMAT": "text"}
    return subprocess.Popen([sys.executable, "-c", "from txnmon.cli import main; main()", "serve"], env=env)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"txnmon serve exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("txnmon serve was not ready within 60 s")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc): the service's own cost, whatever the noise."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _post_all(url: str, key: str, bodies: list[bytes], clients: int) -> tuple[float, list[str], Counter[int]]:
    """Each client posts its share of the bodies one after another; a 503 is sent again (the contract)."""
    accepted: list[str] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    queue = list(enumerate(bodies))

    def client() -> None:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    _, body = queue.pop()
                for _attempt in range(20):
                    r = http.post("/v1/transactions", content=body)
                    with lock:
                        statuses[r.status_code] += 1
                    if r.status_code != 503:
                        break
                    time.sleep(0.2)
                if r.status_code in (200, 202):
                    ids = r.json()["accepted"]
                    with lock:
                        accepted.extend(ids)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, accepted, statuses


def measure(batches: int, batch_size: int, clients: int, serve_src: Path = ROOT / "src") -> dict[str, Any]:
    """One run on fresh topics and a fresh database, dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    settings = load_settings(topic_raw=f"bench-api-{tag}.raw", topic_enriched=f"bench-api-{tag}.enriched",
                             topic_dlq=f"bench-api-{tag}.dlq", topic_by_user=f"bench-api-{tag}.by_user",
                             topic_state=f"bench-api-{tag}.state", mongo_db=f"bench_api_{tag}", metrics_port=0)
    kafka.ensure_topics(settings)
    store = MongoStore(settings)
    port = _free_port()
    proc = None
    try:
        key = api_keys.create(store, "bench", by="bench")
        bodies = _bodies(tag, batches, batch_size)
        proc = _service(settings, serve_src, port)
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc)
        _post_all(url, key, bodies[:1], 1)  # warm-up (imports, connections); its ids are sent again below
        cpu_before = _cpu_seconds(proc.pid)
        elapsed, accepted, statuses = _post_all(url, key, bodies, clients)
        cpu = _cpu_seconds(proc.pid) - cpu_before
        on_topic = Counter(json.loads(rec.value)["transaction_id"]
                           for p in range(settings.topic_partitions)
                           for rec in kafka.read_partition(settings, settings.topic_raw, p))
        sent = batches * batch_size
        missing = [t for t in set(accepted) if on_topic[t] < 1]
        doubled = [t for t, n in on_topic.items() if n > 1]
        # the warm-up's body is accepted there and answered as duplicates here: count it as accepted
        first = set(json.loads(bodies[0])["transactions"][i]["transaction_id"] for i in range(batch_size))
        return {"records": sent, "clients": clients, "batch_size": batch_size, "seconds": round(elapsed, 3),
                "records_per_s": round(sent / elapsed),
                "service_cpu_us_per_record": round(cpu / sent * 1e6, 1), "accepted": len(set(accepted) | first),
                "on_topic": len(on_topic), "missing_on_topic": len(missing), "doubled_on_topic": len(doubled),
                "statuses": dict(statuses), "serve_src": str(serve_src)}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        store.drop()
        store.close()
        kafka.delete_topics(settings, list(settings.pipeline_topics))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--serve-src", type=Path, default=ROOT / "src", help="the source tree the service runs")
    args = parser.parse_args()
    result = measure(args.batches, args.batch_size, args.clients, args.serve_src.resolve())
    print(json.dumps(result, indent=2))
    ok = result["accepted"] == result["records"] and not result["missing_on_topic"] and not result["doubled_on_topic"]
    print(f"  {result['records_per_s']:,} records/s; {'no loss, no double' if ok else 'LOSS OR DOUBLE'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
