"""Issue #31: cart abandonment through the whole path. A small generated day (transactions and cart events)
replayed to Kafka, `txnmon stream` then `txnmon events` run until idle; the service runs the abandonment
walk over closed event time as its batches come. Done twice, on databases and topics of their own: once
with the carts replayed at full speed and read in large batches; once replayed at 2,880x (a day in 30 s)
while the service reads them in small batches, the service SIGKILLed mid-replay (the walk's lease left
held, as a kill mid-walk leaves it) and started again. Both times the abandoned carts are exactly the
generator's `label=abandoned` carts that closed event time has reached, and each intervention is queued
once."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import threading
from typing import Any

import pandas as pd
import pytest

from tests.fixtures.pipeline import ROOT, TXNMON, env_for, wait_for
from txnmon.adapters import kafka
from txnmon.adapters.mongo import LeasesRepository, MongoStore
from txnmon.core.collection_names import ABANDONED_CARTS, CART_EVENTS, CART_OUTCOMES, INTERVENTIONS, NOTIFICATIONS
from txnmon.jobs import replay
from txnmon.jobs.walk_lease import TERM
from txnmon.pipeline.event_sinks import closed_event_time
from txnmon.services.events_wiring import StoredEventTime
from txnmon.synthetic.events import generate_events, write_events
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

pytestmark = pytest.mark.integration
ROUTES = """
version: "1"
destinations:
  crm: {type: webhook, url_env: TXNMON_NOTIFY_CRM_URL, secret_env: TXNMON_NOTIFY_CRM_SECRET}
routes:
  - {name: carts, events: [intervention], to: [crm]}
"""


def run(settings: Any, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TXNMON, command, "--exit-when-idle", "3"], env=env_for(settings, **env), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def expected_abandoned(carts: pd.DataFrame, closed: dt.datetime, timeout: dt.timedelta) -> set[str]:
    """The generator's abandoned carts whose end + the timeout closed event time has passed."""
    ends = pd.to_datetime(carts["timestamp"], utc=True).groupby(carts["cart_id"]).max()
    labels = carts.groupby("cart_id")["label"].first()
    return {c for c, end in ends.items() if labels[c] == "abandoned" and end.to_pydatetime() + timeout <= closed}


def test_abandoned_carts_through_the_service_match_the_labels_at_two_speeds_and_after_a_sigkill(
        settings_factory, tmp_path):
    spec = GeneratorSpec(rows=400, users=60, seed=11)
    txs = generate(spec)
    frames = generate_events(txs, spec, ["carts"])
    write_csv(txs, tmp_path / "tx.csv")
    paths = write_events(frames, tmp_path)
    (tmp_path / "routes.yaml").write_text(ROUTES)

    found = []
    for batch, speedup in ((500, 0.0), (17, 2880.0)):
        s = settings_factory(create_topics=False, batch_max_records=batch, events_lateness_seconds=60,
                             notify_routes_file=tmp_path / "routes.yaml")
        kafka.ensure_topics(s, s.init_topics)
        replay.replay_csv(s, tmp_path / "tx.csv")
        done = run(s, "stream")
        assert done.returncode == 0, done.stdout + done.stderr
        if not speedup:
            replay.replay_csv(s, paths["carts"], kind="carts")
        else:
            # the carts arrive over 30 s while the service runs; it is SIGKILLed once it has stored some
            replaying = threading.Thread(target=replay.replay_csv, args=(s, paths["carts"]),
                                         kwargs={"kind": "carts", "speedup": speedup})
            replaying.start()
            first = subprocess.Popen([TXNMON, "events", "--exit-when-idle", "20"], env=env_for(s), cwd=ROOT,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            watching = MongoStore(s)
            try:
                wait_for(lambda w=watching: w.count(CART_EVENTS) > 200, 120, "the first service to store carts")
            finally:
                first.send_signal(signal.SIGKILL)
                first.wait(30)
            assert replaying.is_alive(), "the replay ended before the kill: not a kill mid-replay"
            replaying.join(120)
            # the worst case, made certain: killed mid-walk, holding the walk's lease for a whole term (unless
            # the kill did hit mid-walk and the killed member's own lease is still held)
            now = dt.datetime.now(dt.UTC)
            LeasesRepository(watching).acquire("abandonment", "killed-member", now, now + TERM)
        done = run(s, "events")
        assert done.returncode == 0, done.stdout + done.stderr

        store = MongoStore(s)
        closed = closed_event_time(StoredEventTime(s, store), s, now=dt.datetime.now(dt.UTC), quiet_after_s=0)
        assert closed is not None
        expected = expected_abandoned(frames["carts"], closed, dt.timedelta(minutes=s.abandon_timeout_minutes))
        abandoned = {d["_id"] for d in store.find(ABANDONED_CARTS)}
        assert abandoned == expected and len(expected) > 30
        outcomes = {d["_id"]: d["outcome"] for d in store.find(CART_OUTCOMES)}
        assert {c for c, o in outcomes.items() if o == "abandoned"} == abandoned
        interventions = {d["_id"] for d in store.find(INTERVENTIONS)}
        queued = [d["_id"] for d in store.find(NOTIFICATIONS)]
        assert interventions and sorted(queued) == sorted(f"{i}|crm" for i in interventions)  # once each
        after_failed = set(frames["carts"].loc[frames["carts"]["scenario"] == "after_failed_payment", "cart_id"])
        assert {i.split(":", 1)[1] for i in interventions if i.startswith("after_failed_payment:")} == \
            after_failed & expected
        found.append((abandoned, interventions, closed))

    (abandoned_a, interventions_a, closed_a), (abandoned_b, interventions_b, closed_b) = found
    assert closed_a == closed_b and abandoned_a == abandoned_b and interventions_a == interventions_b
