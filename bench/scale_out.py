"""Scale-out: one, two and three `txnmon stream` processes in one consumer group, same input.

    python bench/scale_out.py [--rows 200000] [--members 1,2,3] [--partitions 6]

Each run gets its own topics (TOPIC_PARTITIONS partitions each), consumer group and database.
The members are started as separate processes (`txnmon stream --exit-when-idle`), the run waits
until the broker shows all of them in the group with partitions assigned, then produces the same
rows (keyed by user_id, so every run puts each message on the same raw partition at the same
offset) and times from the first message sent to the last transaction stored.

After every run the stored transactions, alerts, suppressed and shadow alerts are read back and
compared with the first run's, field by field, ignoring only what depends on when or where a
document was processed (`RUN_DEPENDENT`): more members must change the speed, never the result.

The processes share this machine's cores with the broker, the store and the producer, so the
report also gives the machine's CPU use during each run and each member's CPU seconds: on two
cores, more members mostly show how much of the machine one member leaves idle.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from txnmon.adapters import kafka  # noqa: E402
from txnmon.adapters.mongo import MongoStore  # noqa: E402
from txnmon.core.collection_names import ALERTS, SHADOW_ALERTS, SUPPRESSED_ALERTS, TRANSACTIONS  # noqa: E402
from txnmon.settings import Settings, load_settings  # noqa: E402

TXNMON = str(Path(sys.executable).with_name("txnmon"))
COMPARED = (TRANSACTIONS, ALERTS, SUPPRESSED_ALERTS, SHADOW_ALERTS)
# fields that say when or where a document was processed, not what it says: the wall clock of the
# batch, and the position on the by-user topic (members interleave their writes into it, so a
# message's by-user offset depends on how many members there were; its raw position does not)
RUN_DEPENDENT = frozenset({"processed_time", "created_at", "judged_at"})


def say(msg: str) -> None:
    print(f"[scale-out] {msg}", file=sys.stderr, flush=True)


def run_settings(tag: str, partitions: int, **overrides: Any) -> Settings:
    return load_settings(**{"topic_raw": f"scale-{tag}.raw", "topic_enriched": f"scale-{tag}.enriched",
                            "topic_dlq": f"scale-{tag}.dlq", "topic_by_user": f"scale-{tag}.by_user",
                            "topic_state": f"scale-{tag}.state", "consumer_group": f"scale-{tag}",
                            "mongo_db": f"scale_{tag}", "metrics_port": 0, "topic_partitions": partitions,
                            **overrides})


def member_env(settings: Settings) -> dict[str, str]:
    """The environment of a `txnmon stream` member: these settings, the secrets unmasked."""
    env = {**os.environ, **{k: str(v) for k, v in settings.masked().items() if v is not None}}
    env["MONGO_URI"] = settings.mongo_uri.get_secret_value()
    if settings.mongo_password is not None:
        env["MONGO_PASSWORD"] = settings.mongo_password.get_secret_value()
    if settings.kafka_sasl_password is not None:
        env["KAFKA_SASL_PASSWORD"] = settings.kafka_sasl_password.get_secret_value()
    return env


def _normalised(value: Any, topics: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: topics.get(v, v) if k == "topic" else _normalised(v, topics)
                for k, v in value.items() if k not in RUN_DEPENDENT}
    if isinstance(value, list):
        return [_normalised(v, topics) for v in value]
    return value


def stored_documents(settings: Settings) -> dict[str, dict[Any, Any]]:
    """Every compared collection by `_id`, each document without its run-dependent fields and with
    this run's topic names replaced by their role (raw, by_user, ...)."""
    topics = {settings.topic_raw: "raw", settings.topic_by_user: "by_user", settings.topic_enriched: "enriched",
              settings.topic_dlq: "dlq", settings.topic_state: "state"}
    # a long socket timeout: mongo-java-server answers a getMore with everything left of the cursor in
    # one reply, which takes more than the default 30 s for 200,000 documents on a busy machine
    db = MongoStore(settings.model_copy(update={"mongo_timeout_ms": 60_000}))
    return {name: {doc["_id"]: _normalised(doc, topics) for doc in db.collection(name).find().batch_size(5_000)}
            for name in COMPARED}


def digest(documents: dict[str, dict[Any, Any]]) -> str:
    """One fingerprint of the stored result, for the report."""
    h = hashlib.sha256()
    for name in sorted(documents):
        for _id in sorted(documents[name], key=str):
            h.update(json.dumps(documents[name][_id], sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def differences(expected: dict[str, dict[Any, Any]], got: dict[str, dict[Any, Any]], limit: int = 5) -> list[str]:
    """What `got` stores differently from `expected`: missing, extra and changed documents (a few of each)."""
    out: list[str] = []
    for name in COMPARED:
        want, have = expected.get(name, {}), got.get(name, {})
        missing = sorted(set(want) - set(have), key=str)
        extra = sorted(set(have) - set(want), key=str)
        changed = sorted((i for i in set(want) & set(have) if want[i] != have[i]), key=str)
        if missing:
            out.append(f"{name}: {len(missing)} missing, e.g. {missing[:limit]}")
        if extra:
            out.append(f"{name}: {len(extra)} extra, e.g. {extra[:limit]}")
        for _id in changed[:limit]:
            fields = sorted(k for k in set(want[_id]) | set(have[_id]) if want[_id].get(k) != have[_id].get(k))
            out.append(f"{name} {_id}: differs in {fields}")
        if len(changed) > limit:
            out.append(f"{name}: {len(changed)} changed in all")
    return out


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _peak_rss_mb(pid: int) -> int | None:
    """The process's peak resident memory since its exec, in MB (None: it has exited already)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return round(int(found.group(1)) / 1024) if found else None


def _exited(member: subprocess.Popen[bytes]) -> bool:
    """Whether the member exited, without reaping it (so `os.wait4` still gets its CPU time)."""
    return os.waitid(os.P_PID, member.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def wait_for_members(settings: Settings, members: Sequence[subprocess.Popen[bytes]], timeout: float = 120.0) -> None:
    """Until the broker shows `len(members)` members, each assigned partitions of both input topics."""
    deadline = time.monotonic() + timeout
    want = {settings.topic_raw, settings.topic_by_user}
    while time.monotonic() < deadline:
        dead = [m.pid for m in members if _exited(m)]
        if dead:
            raise RuntimeError(f"member process(es) {dead} exited before the group formed")
        group = kafka.describe_group(settings, settings.consumer_group)
        if (group.state == "STABLE" and len(group.members) == len(members)
                and all(want <= {topic for topic, _ in m.partitions} for m in group.members)):
            return
        time.sleep(0.5)
    raise RuntimeError(f"{len(members)} members did not form a stable group within {timeout:.0f}s")


def run_members(settings: Settings, n_members: int, rows: Sequence[dict[str, Any]], idle_s: float = 10.0,
                timeout: float = 1800.0, transactions: int | None = None) -> dict[str, Any]:
    """Start `n_members` processors, produce `rows` once they all hold partitions, time until
    `transactions` (default: every row) are stored; returns the figures of the run once every
    member exited 0."""
    kafka.ensure_topics(settings)
    MongoStore(settings).ensure_indexes()
    env = member_env(settings)
    with contextlib.ExitStack() as files:
        # logs to files, not pipes: a member blocked on a full pipe nobody reads would stall the run
        logs = [files.enter_context(tempfile.TemporaryFile()) for _ in range(n_members)]
        return _timed_run(settings, rows, env, logs, idle_s, timeout,
                          len(rows) if transactions is None else transactions)


def _timed_run(settings: Settings, rows: Sequence[dict[str, Any]], env: dict[str, str], logs: list[IO[bytes]],
               idle_s: float, timeout: float, transactions: int) -> dict[str, Any]:
    n_members = len(logs)
    messages: list[kafka.Message] = [(str(r["user_id"]).encode(), json.dumps(r).encode(), None) for r in rows]
    members = [subprocess.Popen([TXNMON, "stream", "--exit-when-idle", str(idle_s)], env=env, cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
               for log in logs]
    try:
        wait_for_members(settings, members)
        db = MongoStore(settings)
        busy0, total0 = _cpu_ticks()
        started = time.monotonic()
        producer = kafka.make_producer(settings)
        for i in range(0, len(messages), 20_000):
            if kafka.send_confirmed(producer, settings.topic_raw, messages[i:i + 20_000]):
                raise RuntimeError("the broker refused some of the input")
        producer.close()
        produced_s = time.monotonic() - started
        while db.estimated_count(TRANSACTIONS) < transactions:
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{n_members} member(s) stored {db.estimated_count(TRANSACTIONS)} of "
                                   f"{transactions} within {timeout:.0f}s")
            if all(_exited(m) for m in members):  # one may leave early: the group reassigns its work
                raise RuntimeError("every member exited before every transaction was stored")
            time.sleep(0.25)
        elapsed = time.monotonic() - started
        busy1, total1 = _cpu_ticks()
        # peak memory of each member since its exec (VmHWM), read while it idles before exiting; not
        # wait4's ru_maxrss, which counts the pages the fork shared with this (large) process
        rss_mb = [_peak_rss_mb(m.pid) for m in members]
        cpu_s = []
        for member in members:  # wait4: each member's own CPU time
            _, status, usage = os.wait4(member.pid, 0)
            member.returncode = os.waitstatus_to_exitcode(status)
            if member.returncode != 0:
                log = logs[members.index(member)]
                log.seek(0)
                tail = log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"a member exited {member.returncode}: {tail}")
            cpu_s.append(round(usage.ru_utime + usage.ru_stime, 1))
        return {"members": n_members, "rows": len(rows), "seconds": round(elapsed, 1),
                "transactions": transactions,
                "load_average_1m_at_end": round(os.getloadavg()[0], 2),
                "tx_per_s": round(transactions / elapsed), "produce_seconds": round(produced_s, 1),
                "machine_cpu_busy_pct": round(100 * (busy1 - busy0) / max(total1 - total0, 1)),
                "member_cpu_s": cpu_s, "member_peak_rss_mb": rss_mb}
    finally:
        for member in members:
            if member.returncode is None and member.poll() is None:
                member.kill()
                member.wait(30)


def drop_run(settings: Settings) -> None:
    MongoStore(settings).drop()
    kafka.delete_topics(settings, list(settings.pipeline_topics))


def scale_out(rows: Sequence[dict[str, Any]], member_counts: Sequence[int], partitions: int) -> dict[str, Any]:
    """The runs, one per member count, and whether each stored exactly what the first one did."""
    runs: list[dict[str, Any]] = []
    reference: dict[str, dict[Any, Any]] | None = None
    for n in member_counts:
        settings = run_settings(uuid.uuid4().hex[:8], partitions)
        say(f"{n} member(s), {partitions} partitions, {len(rows):,} rows")
        try:
            run = run_members(settings, n, rows)
            stored = stored_documents(settings)
        finally:
            drop_run(settings)
        run["stored"] = {name: len(docs) for name, docs in stored.items()}
        run["digest"] = digest(stored)
        if reference is None:
            reference = stored
            run["identical_to_first"] = True
        else:
            diff = differences(reference, stored)
            run["identical_to_first"] = not diff
            if diff:
                run["differences"] = diff
        say(json.dumps(run))
        runs.append(run)
    one = runs[0]["tx_per_s"]
    for run in runs:
        run["speedup_vs_first"] = round(run["tx_per_s"] / one, 2)
    return {"partitions": partitions, "runs": runs, "identical": all(r["identical_to_first"] for r in runs),
            "cpus": os.cpu_count()}


def generated_rows(n: int) -> list[dict[str, Any]]:
    """The same generated input as `make bench`'s e2e run (1% injected fraud, n/10 users)."""
    from txnmon.synthetic.generator import GeneratorSpec, generate

    rows = generate(GeneratorSpec(rows=n, users=max(n // 10, 1), fraud_rate=0.01, seed=11)).to_dict("records")
    return [{k: v for k, v in r.items() if v != ""} for r in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--members", default="1,2,3", help="member counts, comma-separated")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of every topic of a run")
    args = parser.parse_args()
    counts = [int(n) for n in args.members.split(",") if n.strip()]
    if not counts or any(n < 1 or n > args.partitions for n in counts):
        parser.error(f"--members: each count must be between 1 and --partitions ({args.partitions})")
    result = scale_out(generated_rows(args.rows), counts, args.partitions)
    print(json.dumps(result, indent=2))
    return 0 if result["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
