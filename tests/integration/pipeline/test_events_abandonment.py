"""Issue #31: cart abandonment through the whole path. A small generated day (transactions and cart events)
replayed to Kafka, `txnmon stream` then `txnmon events` run until idle; the service runs the abandonment
walk over closed event time as its batches come. Done twice, on databases and topics of their own: once
in large batches, once in small ones with the events service killed after writing a batch and before
committing it (exit 137, then restarted). Both times the abandoned carts are exactly the generator's
`label=abandoned` carts that closed event time has reached, and each intervention is queued once."""

from __future__ import annotations

import datetime as dt
import subprocess
from typing import Any

import pandas as pd
import pytest

from tests.fixtures.pipeline import ROOT, TXNMON, env_for
from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import ABANDONED_CARTS, CART_OUTCOMES, INTERVENTIONS, NOTIFICATIONS
from txnmon.jobs import replay
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


def test_abandoned_carts_through_the_service_match_the_labels_in_any_batches_and_after_a_crash(
        settings_factory, tmp_path):
    spec = GeneratorSpec(rows=400, users=60, seed=11)
    txs = generate(spec)
    frames = generate_events(txs, spec, ["carts"])
    write_csv(txs, tmp_path / "tx.csv")
    paths = write_events(frames, tmp_path)
    (tmp_path / "routes.yaml").write_text(ROUTES)

    found = []
    for batch, failpoint in ((500, ""), (17, "events-written@2")):
        s = settings_factory(create_topics=False, batch_max_records=batch, events_lateness_seconds=60,
                             notify_routes_file=tmp_path / "routes.yaml")
        kafka.ensure_topics(s, s.init_topics)
        replay.replay_csv(s, tmp_path / "tx.csv")
        replay.replay_csv(s, paths["carts"], kind="carts")
        done = run(s, "stream")
        assert done.returncode == 0, done.stdout + done.stderr
        if failpoint:
            crashed = run(s, "events", TXNMON_FAILPOINTS=failpoint)
            assert crashed.returncode == 137, crashed.stdout + crashed.stderr
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
        found.append((abandoned, interventions, closed))

    (abandoned_a, interventions_a, closed_a), (abandoned_b, interventions_b, closed_b) = found
    assert closed_a == closed_b and abandoned_a == abandoned_b and interventions_a == interventions_b
