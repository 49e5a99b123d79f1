"""Verdicts are a function of the input: the same alerts, suppressions and shadow hits whatever
crashes, and the same as a backtest over the topic the processor judged (issue: processor core).

The input is hard on purpose: bursts under a suppression window, a shadow rule, events out of
event-time order, timestamps with microseconds, and (in the last test) no key or the wrong key.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import signal
import time

import pytest

from tests.fixtures.pipeline import (
    T0,
    run_until_idle,
    start_process,
    stored_ids,
    two_members_drain,
    tx_row,
    wait_for,
)
from txnmon.adapters import kafka
from txnmon.core.rules import load_rules
from txnmon.jobs.backtest import backtest_topic
from txnmon.jobs.window_replay import replay_window

pytestmark = [pytest.mark.integration, pytest.mark.faults]

RULES = """
version: verdicts
rules:
  velocity: {suppress_for: 30m}
  impossible_travel: {mode: shadow}
typologies:  # weighted signals too: a graded one, one under suppression, one in shadow
  takeover: {signals: {amount_vs_usual: 40, new_location: 30, new_payment_method: 30},
             thresholds: {low: 40, medium: 70, high: 100}}
  travel: {signals: {fast_travel: 100}, thresholds: {high: 100}, suppress_for: 20m}
  checkouts: {mode: shadow, signals: {velocity: 100}, thresholds: {medium: 100}}
"""


def hard_rows(n: int = 900, users: int = 30, seed: int = 21) -> list[dict]:
    """Bursts, city hops, microsecond times, and some events sent minutes after later ones."""
    rng = random.Random(seed)
    rows, at = [], T0
    for i in range(n):
        at += dt.timedelta(seconds=rng.choice([1, 5, 20, 40, 90]), microseconds=rng.randrange(1_000_000))
        user = f"V{rng.randrange(users):02d}"
        city = rng.choice(["Mumbai", "Mumbai", "Mumbai", "Delhi", "London"])
        amount = rng.choice([120, 800, 4_000, 15_000, 70_000])
        row = tx_row(f"H{i:05d}", user, at, amount, city)
        row["timestamp"] = at.isoformat().replace("+00:00", "Z")  # keeps the microseconds
        rows.append(row)
    for i in range(0, n - 12, 12):  # out of order: each 12th event is sent after the next three
        rows[i], rows[i + 3] = rows[i + 3], rows[i]
    rows.insert(n // 2, {"transaction_id": "BAD", "note": "not a transaction"})  # one rejection, mid-stream
    return rows


def verdicts(settings) -> dict[str, list[str]]:
    return {name: stored_ids(settings, name) for name in ("alerts", "suppressed_alerts", "shadow_alerts")}


def produce_keyed(settings, rows: list[dict], key=lambda row: str(row.get("user_id", "")).encode()) -> None:
    producer = kafka.make_producer(settings)
    try:
        assert kafka.send_confirmed(producer, settings.topic_raw,
                                    [(key(r), json.dumps(r).encode(), None) for r in rows]) == []
    finally:
        producer.close()


@pytest.fixture
def rules_file(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return str(path)


@pytest.fixture
def clean_run(settings_factory, rules_file):
    s = settings_factory(rules_file=rules_file, batch_max_records=60)
    produce_keyed(s, hard_rows())
    run_until_idle(s)
    return verdicts(s)


@pytest.mark.parametrize("failpoint", ["mongodb-written@3", "committed@3", "rejects-written@1"])
def test_a_crash_at_each_write_step_changes_no_verdict(settings_factory, rules_file, clean_run, failpoint):
    s = settings_factory(rules_file=rules_file, batch_max_records=60)
    produce_keyed(s, hard_rows())
    crashed = start_process(s, "--exit-when-idle", "6", TXNMON_FAILPOINTS=failpoint)
    out, _ = crashed.communicate(timeout=180)
    assert crashed.returncode == 137, out.decode()[-2000:]  # it died at the failpoint, uncommitted
    restarted = start_process(s, "--exit-when-idle", "4")
    out, _ = restarted.communicate(timeout=240)
    assert restarted.returncode == 0, out.decode()[-2000:]
    assert verdicts(s) == clean_run
    assert len(stored_ids(s, "transactions")) == 900
    assert stored_ids(s, "rejected") != []


def test_the_clean_run_has_every_kind_of_verdict_and_matches_the_backtest_of_its_topic(settings_factory,
                                                                                     rules_file):
    s = settings_factory(rules_file=rules_file, batch_max_records=60)
    produce_keyed(s, hard_rows())
    run_until_idle(s)
    live = verdicts(s)
    assert live["alerts"] and live["suppressed_alerts"] and live["shadow_alerts"], live

    def named(kind: str) -> set[str]:
        return {i.split(":", 1)[1] for i in live[kind]}
    assert {"takeover", "travel"} <= named("alerts") and "travel" in named("suppressed_alerts")
    assert "checkouts" in named("shadow_alerts")
    offline = backtest_topic(s, load_rules(rules_file))
    assert sorted(offline.alerts) == live["alerts"]
    assert sorted(offline.shadow_alerts) == live["shadow_alerts"]
    assert sum(offline.suppressed_by_rule.values()) == len(live["suppressed_alerts"])


def test_unkeyed_and_miskeyed_messages_are_judged_with_the_users_whole_history(settings_factory, rules_file):
    s = settings_factory(rules_file=rules_file, batch_max_records=80)
    rows = [r for r in hard_rows(seed=5) if r.get("user_id")]
    # a third with no key (the seed's producer), a third with a key that is not the normalised user id
    keys = [None, lambda r: f"  {r['user_id']} ".encode(), lambda r: r["user_id"].encode()]
    batch = [(keys[i % 3](r) if keys[i % 3] else None, json.dumps(r).encode(), None) for i, r in enumerate(rows)]
    two_members_drain(s, batch, idle_s=5)
    assert len(stored_ids(s, "transactions")) == len(rows)
    # every user's events were judged on one partition of the by-user topic
    partitions: dict[str, set[int]] = {}
    for partition in range(s.topic_partitions):
        for record in kafka.read_partition(s, s.topic_by_user, partition):
            partitions.setdefault(record.key.decode(), set()).add(partition)
    assert partitions and all(len(p) == 1 for p in partitions.values())
    assert set(partitions) == {r["user_id"] for r in rows}
    # and the verdicts are what the rules say over that topic, in that order
    offline = backtest_topic(s, load_rules(rules_file))
    live = verdicts(s)
    assert sorted(offline.alerts) == live["alerts"] and live["alerts"]
    assert sorted(offline.shadow_alerts) == live["shadow_alerts"]


def test_members_joining_and_leaving_mid_stream_change_no_verdict(settings_factory, rules_file, clean_run):
    s = settings_factory(rules_file=rules_file, batch_max_records=60)
    produce_keyed(s, hard_rows())
    # idle longer than the 30 s session of the member killed below: first must outlast it to take its partitions
    first = start_process(s, "--exit-when-idle", "40")
    try:
        wait_for(lambda: len(stored_ids(s, "transactions")) >= 150, 120, "the first member to store some batches")
        second = start_process(s)  # joins: the group rebalances, each member restores what it is given
        wait_for(lambda: len(stored_ids(s, "transactions")) >= 450, 120, "both members to store more")
        second.send_signal(signal.SIGKILL)  # leaves without a goodbye: its partitions come back after the session
        second.wait(30)
        out, _ = first.communicate(timeout=240)
        assert first.returncode == 0, out.decode()[-2000:]
    finally:
        for proc in (first, locals().get("second")):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert len(stored_ids(s, "transactions")) == 900
    assert verdicts(s) == clean_run


def test_a_window_replay_gives_each_message_the_verdicts_it_got_live(settings_factory, rules_file):
    """The second half of a stream replayed into an empty database: each user's history is rebuilt
    from the look-back before the window, so the window's verdicts are the live ones, exactly."""
    live = settings_factory(rules_file=rules_file, batch_max_records=60)
    rows = hard_rows()
    half = len(rows) // 2
    produce_keyed(live, rows[:half])
    time.sleep(1.5)  # the window starts between the halves (Kafka timestamps, kept on the by-user topic)
    middle = dt.datetime.now(dt.UTC)
    time.sleep(1.5)
    produce_keyed(live, rows[half:])
    run_until_idle(live)
    later = {r["transaction_id"] for r in rows[half:] if "user_id" in r}

    replayed = settings_factory(create_topics=False, rules_file=rules_file, batch_max_records=60,
                                **{k: getattr(live, k) for k in ("topic_raw", "topic_by_user", "topic_enriched",
                                                                  "topic_dlq", "topic_state")})
    done = replay_window(replayed, middle, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    assert done.new_transactions == len(later)
    assert set(stored_ids(replayed, "transactions")) == later
    expected = {name: [i for i in ids if i.split(":")[0] in later] for name, ids in verdicts(live).items()}
    assert expected["alerts"] and expected["shadow_alerts"], expected
    assert verdicts(replayed) == expected
