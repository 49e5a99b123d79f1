"""A window replay treats the alerts it raises like live ones: they join their users' cases, and the
new ones are routed to the notifications outbox, so what was stored before is neither counted twice
nor notified (again), and `notify=False` (`txnmon replay --no-notify`) keeps a backfill quiet."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.fixtures.pipeline import T0, produce, run_until_idle, stored_ids, tx_row
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import CASES, NOTIFICATIONS
from txnmon.jobs.window_replay import replay_window

pytestmark = [pytest.mark.integration]

ROUTES = """\
version: t
destinations:
  hook: {type: webhook, enabled: true, url_env: TXNMON_NOTIFY_T_UNUSED_URL, secret_env: TXNMON_NOTIFY_T_UNUSED_SECRET}
routes:
  - {name: every-alert, events: [alert], to: [hook]}
"""
TOPICS = ("topic_raw", "topic_by_user", "topic_enriched", "topic_dlq", "topic_state")


def _ids(settings, collection: str) -> list[str]:
    return sorted(d["_id"] for d in MongoStore(settings).find(collection, projection={"_id": 1}))


def test_replayed_alerts_join_cases_and_are_routed_once(settings_factory, tmp_path):
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    live = settings_factory(notify_routes_file=routes)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    rows = [tx_row(f"H{i}", f"U{i % 2}", T0 + dt.timedelta(minutes=i), 60_000) for i in range(4)]
    rows += [tx_row(f"L{i}", "U9", T0 + dt.timedelta(minutes=i), 300) for i in range(3)]
    produce(live, rows)
    run_until_idle(live)
    alerts = stored_ids(live, "alerts")
    assert alerts == [f"H{i}:high_amount" for i in range(4)]
    live_outbox, live_cases = _ids(live, NOTIFICATIONS), MongoStore(live).find(CASES)
    assert live_outbox == [f"{a}|hook" for a in alerts] and len(live_cases) == 2
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)

    # over the live database: nothing new anywhere, nothing notified again, and an alert raised before
    # its route existed (its outbox entry is gone here) is not notified now either
    MongoStore(live).collection(NOTIFICATIONS).delete_one({"_id": "H0:high_amount|hook"})
    done = replay_window(live, start, end)
    assert (done.messages, done.new_transactions, done.alerts) == (7, 0, 4)
    assert _ids(live, NOTIFICATIONS) == live_outbox[1:]
    assert MongoStore(live).find(CASES) == live_cases

    # a database that never saw the window (the processor was down): the same cases, each alert routed
    missed = settings_factory(create_topics=False, notify_routes_file=routes,
                              **{k: getattr(live, k) for k in TOPICS})
    done = replay_window(missed, start, end)
    assert done.new_transactions == 7 and stored_ids(missed, "alerts") == alerts
    assert _ids(missed, NOTIFICATIONS) == live_outbox
    cases = MongoStore(missed).find(CASES)
    assert sorted((c["user_id"], sorted(c["alert_ids"])) for c in cases) == sorted(
        (c["user_id"], sorted(c["alert_ids"])) for c in live_cases)
    replay_window(missed, start, end)  # again: idempotent
    assert _ids(missed, NOTIFICATIONS) == live_outbox and len(MongoStore(missed).find(CASES)) == 2

    # a backfill that should page nobody
    quiet = settings_factory(create_topics=False, notify_routes_file=routes, **{k: getattr(live, k) for k in TOPICS})
    done = replay_window(quiet, start, end, notify=False)
    assert done.alerts == 4 and _ids(quiet, NOTIFICATIONS) == [] and len(MongoStore(quiet).find(CASES)) == 2


def test_a_replay_that_dies_between_routing_and_storing_routes_every_new_alert_once(settings_factory, tmp_path,
                                                                                     monkeypatch):
    from txnmon.pipeline import sinks

    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    live = settings_factory(notify_routes_file=routes)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    produce(live, [tx_row(f"H{i}", f"U{i}", T0 + dt.timedelta(minutes=i), 60_000) for i in range(3)])
    run_until_idle(live)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    missed = settings_factory(create_topics=False, notify_routes_file=routes, **{k: getattr(live, k) for k in TOPICS})

    def dies(self, batch):
        raise SystemExit("killed between the outbox write and the alerts write")

    with monkeypatch.context() as patched:
        patched.setattr(sinks.AlertsSink, "write", dies)
        with pytest.raises(SystemExit):
            replay_window(missed, start, end)
    assert stored_ids(missed, "alerts") == [] and len(_ids(missed, NOTIFICATIONS)) == 3  # routed, not stored
    replay_window(missed, start, end)  # the run again, as WindowIncomplete and the docs say
    assert stored_ids(missed, "alerts") == [f"H{i}:high_amount" for i in range(3)]
    assert _ids(missed, NOTIFICATIONS) == [f"H{i}:high_amount|hook" for i in range(3)]


def test_a_replay_judges_with_the_lists_and_records_its_rules_version(settings_factory, tmp_path):
    """A trusted user's hit was suppressed live: the replay (which loads today's lists as the processor
    does) suppresses it too, so it is neither stored as an alert nor routed; a replay with another rules
    file records that version, so the quality suite knows its alert names."""
    from txnmon.core.collection_names import RULE_VERSIONS, SUPPRESSED_ALERTS
    from txnmon.jobs.lists import add_entry

    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    live = settings_factory(notify_routes_file=routes)
    trusted = {"reason": "a known big spender", "by": "test", "rule": "high_amount",
               "expires_at": dt.datetime.now(dt.UTC) + dt.timedelta(days=30)}
    add_entry(MongoStore(live), "trusted_users", "U0", **trusted)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    produce(live, [tx_row(f"H{i}", f"U{i}", T0 + dt.timedelta(minutes=i), 60_000) for i in range(2)])
    run_until_idle(live)
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    assert stored_ids(live, "alerts") == ["H1:high_amount"]
    assert stored_ids(live, SUPPRESSED_ALERTS) == ["H0:high_amount"]

    other_rules = tmp_path / "rules.yaml"
    other_rules.write_text("version: backfill\nrules:\n  high_amount: {threshold: 1000}\n")
    backfill = settings_factory(create_topics=False, notify_routes_file=routes, rules_file=other_rules,
                                **{k: getattr(live, k) for k in TOPICS})
    add_entry(MongoStore(backfill), "trusted_users", "U0", **trusted)
    replay_window(live, start, end)
    assert stored_ids(live, "alerts") == ["H1:high_amount"]
    assert _ids(live, NOTIFICATIONS) == ["H1:high_amount|hook"]
    replay_window(backfill, start, end, notify=False)
    assert stored_ids(backfill, "alerts") == ["H1:high_amount"]
    assert any(v["_id"].startswith("backfill+") for v in MongoStore(backfill).find(RULE_VERSIONS))
