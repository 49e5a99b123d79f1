"""Notifications end to end: the real processor writes the outbox, real `txnmon notify` workers deliver
to a local HTTP receiver (webhook, Slack-compatible) and a local SMTP server (aiosmtpd)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import secrets
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.fixtures.pipeline import (
    ROOT,
    TXNMON,
    env_for,
    expected_alert_ids,
    produce,
    run_until_idle,
    start_process,
    stored_ids,
    synthetic_rows,
    wait_for,
)
from tests.fixtures.receivers import HttpReceiver, SmtpReceiver
from txnmon.adapters.mongo import MongoStore, OutboxRepository
from txnmon.core.collection_names import ALERTS, NOTIFICATIONS, SHADOW_ALERTS, SUPPRESSED_ALERTS, TRANSACTIONS
from txnmon.jobs.replay import replay_csv
from txnmon.notifications import messages, policy
from txnmon.notifications import routes as routing
from txnmon.notifications.metrics import NotifyMetrics
from txnmon.notifications.outbox import outbox_counts
from txnmon.notifications.worker import NotifyWorker
from txnmon.settings import DEFAULT_RULES_FILE, SAMPLE_CSV, Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROUTES = """version: "test"
destinations:
  hook: {{type: webhook, url_env: TXNMON_NOTIFY_HOOK_URL, secret_env: TXNMON_NOTIFY_HOOK_SECRET,
         rate_per_second: 1000, timeout_seconds: 3}}
  chat: {{type: slack, url_env: TXNMON_NOTIFY_CHAT_URL, rate_per_second: 1000, timeout_seconds: 3}}
  mail: {{type: email, smtp_host: 127.0.0.1, smtp_port: {smtp_port}, sender: txnmon@test.invalid,
         to: [fraud@test.invalid], rate_per_second: 1000, timeout_seconds: 3}}
routes:
  - {{name: all, events: [alert], to: [hook]}}
  - {{name: high, events: [alert], min_severity: high, to: [chat, mail]}}
  - {{name: ops, events: [dag_failed, quality_failed], to: [hook]}}
"""


@pytest.fixture
def rules_file(tmp_path) -> str:
    """The shipped rules plus a shadow rule and a low-severity typology that suppresses its repeats,
    so shadow and suppressed alerts exist (and must not be sent) next to high and low live ones."""
    shipped = DEFAULT_RULES_FILE.read_text()
    text = shipped.replace("  unusual_location: {enabled: false}\n", "  unusual_location: {mode: shadow}\n")
    assert text != shipped
    text += ("  new_place:                  # test only: a place the user did not use lately, once a day\n"
             "    signals: {new_location: 100}\n"
             "    thresholds: {low: 100}\n"
             "    suppress_for: 24h\n")
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture
def wiring(tmp_path, http_receiver: HttpReceiver, smtp_receiver: SmtpReceiver) -> dict[str, str]:
    """The routes file and the workers' secrets (made up per run, never in a file)."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES.format(smtp_port=smtp_receiver.port))
    return {"NOTIFY_ROUTES_FILE": str(routes), "TXNMON_NOTIFY_HOOK_URL": http_receiver.url("/hook"),
            "TXNMON_NOTIFY_HOOK_SECRET": secrets.token_hex(16),
            "TXNMON_NOTIFY_CHAT_URL": http_receiver.url("/chat")}


def make(settings_factory, wiring: dict[str, str], rules_file: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"notify_routes_file": wiring["NOTIFY_ROUTES_FILE"], "rules_file": rules_file,
                                 "notify_backoff_base_seconds": 0.5, "notify_backoff_max_seconds": 4.0,
                                 "notify_lease_seconds": 10, **overrides}
    return settings_factory(**values)


@contextlib.contextmanager
def workers(settings: Settings, env: dict[str, str], n: int = 1,
            metrics: NotifyMetrics | None = None) -> Iterator[list[NotifyWorker]]:
    """`n` notify workers (the code `txnmon notify` runs), each in its own thread, stopped on exit."""
    observe = {"observe": metrics.observe} if metrics else {}
    running = [NotifyWorker(settings, env=env, **observe) for _ in range(n)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in running]
    for t in threads:
        t.start()
    try:
        yield running
    finally:
        for w in running:
            w.request_stop()
        for t in threads:
            t.join(30)


def outbox(settings: Settings, status: str | None = None) -> list[dict]:
    return MongoStore(settings).find(NOTIFICATIONS, {"status": status} if status else None)


def all_settled(settings: Settings) -> bool:
    counts = outbox_counts(MongoStore(settings))
    return counts["pending"] == 0


def assert_signed(received, secret: str) -> None:
    for r in received:
        assert messages.verify(secret.encode(), r.headers["X-Txnmon-Timestamp"], r.body,
                               r.headers["X-Txnmon-Signature"], now=time.time()), r.headers
        doc = r.json()
        assert r.headers["Idempotency-Key"] == doc["id"] == f"{doc['event_id']}|hook"


def routed_alert_ids(settings: Settings) -> set[str]:
    return set(stored_ids(settings, ALERTS))


def test_every_routed_alert_arrives_once_signed_and_nothing_suppressed_or_shadow_is_sent(
        settings_factory, wiring, rules_file, http_receiver, smtp_receiver):
    s = make(settings_factory, wiring, rules_file)
    rows = synthetic_rows(1500, users=40, seed=5)
    produce(s, rows)
    run_until_idle(s)
    alerts = MongoStore(s).find(ALERTS)
    assert alerts and stored_ids(s, SHADOW_ALERTS) and stored_ids(s, SUPPRESSED_ALERTS)  # all three kinds exist
    high = {a["_id"] for a in alerts if a["severity"] == "high"}
    assert high and len(high) < len(alerts)
    metrics = NotifyMetrics()
    with workers(s, wiring, n=2, metrics=metrics):  # two workers share the outbox through their leases
        wait_for(lambda: all_settled(s), 120, "every notification to be delivered")
    hooks = http_receiver.on("/hook")
    assert Counter(r.json()["event_id"] for r in hooks) == Counter({a["_id"]: 1 for a in alerts})
    assert_signed(hooks, wiring["TXNMON_NOTIFY_HOOK_SECRET"])
    sample = next(r.json() for r in hooks if r.json()["event_id"] in high)
    assert sample["kind"] == "alert" and sample["event"]["severity"] == "high" and sample["version"] == 1
    chats = http_receiver.on("/chat")
    assert Counter(r.headers["Idempotency-Key"].split("|")[0] for r in chats) == Counter({a: 1 for a in high})
    assert all(r.json()["text"].startswith("[txnmon] HIGH ") for r in chats)
    mails = smtp_receiver.messages
    assert Counter(m["X-Txnmon-Notification"].split("|")[0] for m in mails) == Counter({a: 1 for a in high})
    assert {m["To"] for m in mails} == {"fraud@test.invalid"}
    assert [m["Subject"] for m in mails if not m["Subject"].strip().startswith("[txnmon] HIGH ")] == []
    sent = outbox(s, "sent")
    assert len(sent) == len(alerts) + 2 * len(high) and all(e["attempts"] == 1 for e in sent)
    counted = {d: metrics.registry.get_sample_value("txnmon_notifications_total", {"destination": d, "outcome": "sent"})
               for d in ("hook", "chat", "mail")}
    assert counted == {"hook": len(alerts), "chat": len(high), "mail": len(high)}


def test_a_receiver_down_for_20_s_gets_everything_after_it_recovers(settings_factory, wiring, rules_file,
                                                                    http_receiver, smtp_receiver):
    # backoff capped at 4 s so the test is short; 20 attempts outlast the 20 s outage whatever the jitter
    s = make(settings_factory, wiring, rules_file, notify_max_attempts=20, notify_backoff_base_seconds=1.0,
             notify_backoff_max_seconds=4.0)
    produce(s, synthetic_rows(600, users=30, seed=8))
    run_until_idle(s)
    alerts = routed_alert_ids(s)
    assert alerts
    http_receiver.stop()
    with workers(s, wiring):
        down_since = time.monotonic()
        wait_for(lambda: any(e["attempts"] >= 2 for e in outbox(s)), 30, "failed attempts to be recorded")
        time.sleep(max(0.0, 20 - (time.monotonic() - down_since)))
        assert http_receiver.on("/hook") == [] and not [e for e in outbox(s, "sent") if e["destination"] == "hook"]
        assert not outbox(s, "dead")
        http_receiver.start()  # back on the same port
        wait_for(lambda: all_settled(s), 60, "the backlog to be delivered after the receiver came back")
    hooks = http_receiver.on("/hook")
    assert Counter(r.json()["event_id"] for r in hooks) == Counter({a: 1 for a in alerts})
    assert_signed(hooks, wiring["TXNMON_NOTIFY_HOOK_SECRET"])
    retried = [e for e in outbox(s, "sent") if e["destination"] == "hook"]
    assert len(retried) == len(alerts) and all(e["attempts"] >= 2 for e in retried)
    assert not outbox(s, "dead")


def test_an_always_failing_receiver_ends_dead_lettered_after_n_tries_and_a_resend_delivers(
        settings_factory, wiring, rules_file, http_receiver, smtp_receiver):
    s = make(settings_factory, wiring, rules_file, notify_max_attempts=3, notify_backoff_base_seconds=0.2,
             notify_backoff_max_seconds=0.5)
    produce(s, synthetic_rows(300, users=30, seed=9))
    run_until_idle(s)
    alerts = routed_alert_ids(s)
    assert alerts
    http_receiver.status = 503
    with workers(s, wiring):
        wait_for(lambda: all_settled(s), 90, "every notification to be settled")
    dead = outbox(s, "dead")
    assert {e["event_id"] for e in dead if e["destination"] == "hook"} == alerts
    assert all(e["attempts"] == 3 and "gave up after 3 attempts: HTTP 503" in e["last_outcome"] for e in dead)
    assert http_receiver.attempts == 3 * len(dead) and http_receiver.received == []
    env = env_for(s, **wiring)
    listed = subprocess.run([TXNMON, "notify", "--list-dead", "--json", "--limit", "10000"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert {e["_id"] for e in json.loads(listed.stdout)} == {e["_id"] for e in dead}
    status = subprocess.run([TXNMON, "status", "--sample", "0"], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert f"{len(dead):,} dead-lettered" in status.stdout, status.stdout
    assert "WARNING  notifications" in status.stdout

    http_receiver.status = 200
    resent = subprocess.run([TXNMON, "notify", "resend", "--all-dead", "--by", "ops-test"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert resent.returncode == 0, resent.stderr
    assert f"{len(dead)} notification(s) queued again" in resent.stdout
    worker = subprocess.run([TXNMON, "notify", "--exit-when-idle", "2"], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert worker.returncode == 0, worker.stderr[-2000:]
    assert Counter(r.json()["event_id"] for r in http_receiver.on("/hook")) == Counter({a: 1 for a in alerts})
    assert_signed(http_receiver.on("/hook"), wiring["TXNMON_NOTIFY_HOOK_SECRET"])
    assert outbox(s, "dead") == [] and all(e.get("resent_by") == "ops-test" for e in outbox(s, "sent")
                                           if e["destination"] == "hook")
    again = subprocess.run([TXNMON, "notify", "resend", dead[0]["_id"]], env=env, cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 1 and "not dead-lettered" in again.stdout  # a sent one is never queued again


@pytest.mark.faults
@pytest.mark.parametrize("crash", ["mongodb-written@3", "sigkill"])
def test_a_processor_killed_mid_stream_sends_nothing_twice_and_loses_nothing(settings_factory, wiring, rules_file,
                                                                             http_receiver, smtp_receiver,
                                                                             crash):
    s = make(settings_factory, wiring, rules_file, batch_max_records=100)
    rows = synthetic_rows(3000, users=40, seed=12)
    produce(s, rows)
    with workers(s, wiring):  # delivering while the processor writes, dies and starts again
        if crash == "sigkill":
            proc = start_process(s)
            try:
                # killed on the stored count, not on deliveries: a fast processor could finish the stream
                # before 20 hooks arrive; one delivered hook says the workers are sending meanwhile
                wait_for(lambda: len(stored_ids(s, TRANSACTIONS)) >= 300 and len(http_receiver.on("/hook")) >= 1,
                         120, "the first batches stored and an alert delivered")
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
            finally:
                if proc.poll() is None:
                    proc.kill()
            assert len(stored_ids(s, TRANSACTIONS)) < len(rows), "the kill should land mid-stream"
        else:
            proc = start_process(s, "--exit-when-idle", "6", TXNMON_FAILPOINTS=crash)
            out, _ = proc.communicate(timeout=180)
            assert proc.returncode == 137, out.decode()[-2000:]  # died with the batch stored, uncommitted
        restarted = start_process(s, "--exit-when-idle", "4")
        out, _ = restarted.communicate(timeout=300)
        assert restarted.returncode == 0, out.decode()[-2000:]
        wait_for(lambda: all_settled(s), 120, "every notification to be delivered")
    expected = expected_alert_ids(rows, s)
    live = expected & routed_alert_ids(s)
    assert routed_alert_ids(s) == live and live  # the offline answer, less shadow and suppressed hits
    assert Counter(r.json()["event_id"] for r in http_receiver.on("/hook")) == Counter({a: 1 for a in live})
    assert_signed(http_receiver.on("/hook"), wiring["TXNMON_NOTIFY_HOOK_SECRET"])


def test_a_failing_quality_suite_notifies_through_the_dags_notifier(settings_factory, wiring, rules_file, run_dag,
                                                                    http_receiver, smtp_receiver):
    s = make(settings_factory, wiring, rules_file)
    replay_csv(s, SAMPLE_CSV)
    run_until_idle(s)
    db = MongoStore(s)
    base = db.find_one(TRANSACTIONS, {"_id": "5"})
    db.insert_missing(TRANSACTIONS, [{**base, "_id": "bad-1", "transaction_id": "bad-1", "amount": -10.0}])
    start = base["processed_time"].replace(minute=0, second=0, microsecond=0)
    logical = start + dt.timedelta(hours=1, seconds=1)
    result = run_dag("data_quality", s, logical_date=logical, NOTIFY_ROUTES_FILE=wiring["NOTIFY_ROUTES_FILE"])
    assert result.returncode != 0 and "critical expectations failed" in result.stdout + result.stderr
    queued = [e for e in outbox(s) if e["kind"] == routing.QUALITY_FAILED]
    assert [e["destination"] for e in queued] == ["hook"], (result.stdout + result.stderr)[-4000:]
    with workers(s, wiring):
        wait_for(lambda: all_settled(s), 60, "the quality notification to be delivered")
    [received] = [r for r in http_receiver.on("/hook") if r.json()["kind"] == routing.QUALITY_FAILED]
    assert_signed([received], wiring["TXNMON_NOTIFY_HOOK_SECRET"])
    event = received.json()["event"]
    assert event["dag_id"] == "data_quality" and event["task_id"] == "check"
    assert "expect_column_values_to_be_between(amount)" in event["detail"]


def test_the_rate_limit_holds_for_all_workers_together(settings_factory, tmp_path, http_receiver):
    """Three workers, one destination at 4 per second: in any span T the receiver gets at most the
    burst (4) plus T x 4, as one worker would send (with a bucket per worker, as before, this test
    failed: about three bursts arrived at once)."""
    from txnmon.notifications.outbox import enqueue_events, load_routes

    routes_file = tmp_path / "routes.yaml"
    routes_file.write_text("version: t\ndestinations:\n"
                           "  hook: {type: webhook, url_env: TXNMON_NOTIFY_HOOK_URL,\n"
                           "         secret_env: TXNMON_NOTIFY_HOOK_SECRET,\n"
                           "         rate_per_second: 4}\n"
                           "routes:\n  - {name: ops, events: [dag_failed], to: [hook]}\n")
    s = settings_factory(notify_routes_file=str(routes_file))
    env = {"TXNMON_NOTIFY_HOOK_URL": http_receiver.url("/hook"), "TXNMON_NOTIFY_HOOK_SECRET": secrets.token_hex(16)}
    at = dt.datetime.now(dt.UTC)
    events = [routing.pipeline_event(routing.DAG_FAILED, f"dag-{i}", title=f"failure {i}", detail="", at=at)
              for i in range(16)]
    assert len(enqueue_events(MongoStore(s), load_routes(routes_file), events, now=at)) == 16
    with workers(s, env, n=3):
        wait_for(lambda: all_settled(s), 60, "every notification to be delivered")
    arrived = sorted(r.at for r in http_receiver.on("/hook"))
    assert len(arrived) == 16
    # an HTTP round trip (and a stall of this busy process) between reserving a slot and arriving may bunch
    # arrivals; per-worker buckets, the bug this guards against, bunched about 12
    slack = 3
    worst = max(j - i + 1 - 4 * (arrived[j] - arrived[i]) for i in range(16) for j in range(i, 16))
    assert worst <= 4 + slack, arrived
    assert arrived[-1] - arrived[0] >= (16 - 4 - slack) / 4  # twelve at the rate after the burst
    assert {e["attempts"] for e in outbox(s)} == {1}  # entries given back while throttled were not counted


def test_a_send_slot_is_taken_by_compare_and_set(settings_factory):
    """Two workers reading the same rate state: the one whose write finds it changed reads again."""
    store = MongoStore(settings_factory())
    outbox = OutboxRepository(store)
    slot = functools.partial(policy.rate_slot, rate=1.0, burst=1)
    assert outbox.reserve_send("hook", 100.0, slot) == 0.0  # the first send creates the state
    raced = []

    def meddling(tat, now):
        if not raced:  # another worker takes the slot between this read and this write
            raced.append(tat)
            assert outbox.reserve_send("hook", now, slot) == 0.0
        return slot(tat, now)

    assert outbox.reserve_send("hook", 101.0, meddling) == pytest.approx(1.0)  # read again: the slot is gone
    assert raced == [101.0] and store.find_one("notify_rates", {"_id": "hook"})["tat"] == 102.0
