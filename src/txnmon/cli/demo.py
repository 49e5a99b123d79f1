"""`make demo`: the whole story on the local stack, then a summary with URLs and counts.

1. a labelled day of transactions is generated (with injected fraud), next to the seed sample
2. a streaming processor, the notify worker and the dashboard start in the background (`make down`
   stops them)
3. both files are replayed as fast as possible and processed
4. the KPI rollups and a data-quality run follow
5. a summary: URLs, rows sent / stored / rejected, alerts by rule, fraud caught

Safe to run again: writes are idempotent, and running processes are reused.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.core.backtest import run_backtest
from txnmon.core.collection_names import ALERTS, NOTIFICATIONS, TRANSACTIONS
from txnmon.core.rules import load_rules
from txnmon.errors import QualityCheckFailed
from txnmon.jobs import quality as quality_jobs
from txnmon.jobs import replay, rollups
from txnmon.jobs.backtest import load_transactions
from txnmon.notifications import outbox
from txnmon.settings import PACKAGE_DIR, PROJECT_ROOT, SAMPLE_CSV, Settings, get_settings
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

RUN_DIR = PROJECT_ROOT / ".devstack" / "run"
DEMO_DIR = PROJECT_ROOT / ".devstack" / "demo"
LOG_DIR = PROJECT_ROOT / ".devstack" / "logs"
BIN = Path(sys.executable).parent
DASHBOARD_PORT = 8501
DEMO_ROWS, DEMO_USERS = 20_000, 2_000


def step(n: int, text: str) -> None:
    print(f"[{n}/5] {text}", flush=True)


def _alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
        return str(PROJECT_ROOT) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return False


def start_background(name: str, argv: list[str]) -> str:
    """Start a long-running part of the demo once; its pid file lets `make down` stop it."""
    pidfile = RUN_DIR / f"{name}.pid"
    if _alive(pidfile):
        return f"{name} already running (pid {pidfile.read_text().strip()})"
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=PROJECT_ROOT, start_new_session=True)
    pidfile.write_text(f"{proc.pid}\n")
    return f"{name} started (pid {proc.pid}, log {LOG_DIR / (name + '.log')})"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until_processed(settings: Settings, expected_ids: int, timeout: float = 600) -> int:
    db = MongoStore(settings)
    deadline = time.monotonic() + timeout
    stored = 0
    while time.monotonic() < deadline:
        lag = sum(kafka.consumer_lag(settings, settings.consumer_group, settings.topic_raw).values())
        stored = db.estimated_count(TRANSACTIONS)
        print(f"\r      processing: {stored:,} transactions stored, lag {lag:,}   ", end="", flush=True)
        if lag == 0 and stored >= expected_ids:
            break
        time.sleep(1)
    print()
    return stored


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    settings = get_settings()
    day = DEMO_DIR / f"generated_day_{DEMO_ROWS}_seed7.csv"
    step(1, f"generating a labelled day: {DEMO_ROWS:,} transactions, {DEMO_USERS:,} users, 1% injected fraud")
    # written every time (about a second): a file kept from an older generator would replay rows without
    # the labels the summary's offline check reads (seen: behaviours "n/a", 52 of 65 incidents)
    write_csv(generate(GeneratorSpec(rows=DEMO_ROWS, users=DEMO_USERS, fraud_rate=0.01, seed=7)), day)
    print(f"      {day}")

    step(2, "starting the streaming processor, the notify worker and the dashboard in the background")
    print("      " + start_background("processor", [str(BIN / "txnmon"), "stream"]))
    print("      " + start_background("notify", [str(BIN / "txnmon"), "notify"]))
    print("      " + start_background("dashboard", [
        str(BIN / "streamlit"), "run", str(PACKAGE_DIR / "dashboard" / "app.py"), "--server.address=127.0.0.1",
        f"--server.port={DASHBOARD_PORT}", "--server.headless=true", "--browser.gatherUsageStats=false",
        "--client.toolbarMode=viewer"]))

    step(3, "replaying the seed sample and the generated day as fast as possible")
    sent = 0
    for file in (SAMPLE_CSV, day):
        summary = replay.replay_csv(settings, file)
        sent += summary.rows_sent
        print(f"      {replay.render_summary(summary)}")
    stored = wait_until_processed(settings, sent)

    step(4, "KPI rollups and a data-quality run")
    db = MongoStore(settings)
    run = rollups.run_rollups(db, full_rebuild=True)
    print(f"      rollups: {sum(run.documents.values()):,} documents in {len(run.documents)} kpi_* collections")
    now = dt.datetime.now(dt.UTC)
    try:
        reports = quality_jobs.quality_interval(settings, now - dt.timedelta(days=1), now + dt.timedelta(minutes=1))
        quality = ", ".join(f"{r['suite']} {'passed' if r['success'] else 'warnings'}" for r in reports)
        report_path = reports[0]["report_path"]
    except QualityCheckFailed as exc:
        quality, report_path = f"FAILED: {exc}", None

    step(5, "summary")
    alerts = Counter(a["rule"] for a in db.find(ALERTS, {"mode": {"$ne": "shadow"}},
                                                      projection={"rule": 1}))
    dlq = sum(kafka.end_offsets(settings, settings.topic_dlq).values())
    queued = outbox.outbox_counts(db)
    notifications = (f"{db.count(NOTIFICATIONS):,} queued, {queued['pending']:,} pending, {queued['dead']:,} dead"
                     if db.count(NOTIFICATIONS) else "none routed (enable a destination in the routes file)")
    txs, rejected = load_transactions(day, settings.zone)
    bt = run_backtest(txs, load_rules(settings.rules_file), rejected)
    caught = sum(p["caught"] for p in bt.recall_by_pattern.values())
    incidents = sum(p["incidents"] for p in bt.recall_by_pattern.values())
    serious = (bt.false_by_severity.get("medium", 0) + bt.false_by_severity.get("high", 0)) / max(
        bt.clean_transactions, 1)
    worst = max(bt.false_by_behaviour.items(), key=lambda kv: kv[1]["rate"], default=None)
    worst_text = f"{worst[0]} {worst[1]['rate']:.2%}" if worst else "n/a"
    for _ in range(30):
        if _port_open(DASHBOARD_PORT):
            break
        time.sleep(1)
    airflow = "http://127.0.0.1:8080 (running)" if _port_open(8080) else "not running (start it with `make airflow`)"
    print(f"""
      dashboard       http://127.0.0.1:{DASHBOARD_PORT}
      airflow         {airflow}
      quality report  {report_path or 'n/a'}  ({quality})
      metrics         http://127.0.0.1:{settings.metrics_port}/metrics (the processor)

      sent to {settings.topic_raw}:   {sent:,}
      transactions stored:       {stored:,} in {settings.mongo_db}.transactions
      rejected to {settings.topic_dlq}: {dlq:,}
      alerts by rule:            {', '.join(f'{k} {v:,}' for k, v in sorted(alerts.items())) or 'none'}
      notifications:             {notifications} (routes: {settings.notify_routes_file})
      injected fraud caught:     {caught}/{incidents} incidents; false alerts on {bt.false_alert_rate or 0:.2%} of
                                 clean transactions ({serious:.2%} medium or high; the most alerted clean
                                 behaviour: {worst_text}) (offline check with the same rules)

      The processor, the notify worker and the dashboard keep running; `make down` stops them and the stack.""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
