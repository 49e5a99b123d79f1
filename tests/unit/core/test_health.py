"""The verdict of `txnmon status` from plain observations (no server, no clock)."""

from __future__ import annotations

import datetime as dt

from txnmon.core.health import CRITICAL, WARNING, Observation, Thresholds, judge

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
RAW = "t.raw"


def obs(**kw) -> Observation:
    base = {"now": NOW, "interval_s": 2.0, "group": "g", "members": 1,
            "lag_first": {RAW: {0: 0, 1: 0}}, "lag_last": {RAW: {0: 0, 1: 0}}}
    return Observation(**{**base, **kw})


def test_a_member_and_no_lag_is_healthy():
    verdict = judge(obs())
    assert verdict.state == "healthy" and verdict.exit_code == 0 and verdict.problems == ()


def test_no_member_while_lag_grows_is_unhealthy_and_says_how_much():
    verdict = judge(obs(members=0, lag_first={RAW: {0: 5, 1: 0}}, lag_last={RAW: {0: 9, 1: 3}}))
    assert verdict.state == "unhealthy" and verdict.exit_code == 1
    [p] = verdict.problems
    assert p.severity == CRITICAL and p.check == "consumers"
    assert "no processor is a member of group g while 12 message(s) wait, up 7 in 2s" in p.message


def test_no_member_with_a_standing_backlog_is_unhealthy_too():
    assert judge(obs(members=0, lag_first={RAW: {0: 4}}, lag_last={RAW: {0: 4}})).exit_code == 1


def test_no_member_and_nothing_waiting_is_only_a_warning():
    verdict = judge(obs(members=0))
    assert verdict.state == "degraded" and verdict.exit_code == 0
    assert [p.severity for p in verdict.problems] == [WARNING]


def test_members_falling_behind_is_a_warning_but_draining_is_fine():
    behind = judge(obs(lag_first={RAW: {0: 10, 1: 10}}, lag_last={RAW: {0: 50, 1: 12}}))
    assert [(p.severity, p.check) for p in behind.problems] == [(WARNING, "consumers")]
    assert "lag grew by 42 in 2s with 1 member(s)" in behind.problems[0].message
    draining = judge(obs(lag_first={RAW: {0: 100, 1: 10}}, lag_last={RAW: {0: 20, 1: 12}}))
    assert draining.problems == ()


def test_a_service_down_is_critical_and_skips_what_it_would_have_answered():
    verdict = judge(obs(kafka_error="timed out", members=0, lag_last={RAW: {0: 99}}))
    assert [(p.severity, p.check) for p in verdict.problems] == [(CRITICAL, "kafka")]
    verdict = judge(obs(mongo_error="refused", kpi_pending=3))
    assert [(p.severity, p.check) for p in verdict.problems] == [(CRITICAL, "mongodb")]
    assert verdict.exit_code == 1


def test_dlq_growth_above_the_rate_warns():
    assert judge(obs(raw_first=0, raw_last=100, dlq_first=0, dlq_last=5)).problems == ()  # 5% is the limit
    [p] = judge(obs(raw_first=0, raw_last=100, dlq_first=0, dlq_last=6)).problems
    assert p.check == "dlq" and "6 message(s) rejected to the DLQ in 2s (6% of 100" in p.message
    [p] = judge(obs(dlq_first=3, dlq_last=4)).problems  # re-driven or rejected with no new raw traffic
    assert p.check == "dlq"


def test_stale_kpis_with_pending_batches_warn():
    fresh = judge(obs(kpi_as_of=NOW - dt.timedelta(minutes=10), kpi_pending=4))
    assert fresh.problems == ()
    stale = judge(obs(kpi_as_of=NOW - dt.timedelta(minutes=75), kpi_pending=4))
    assert [p.check for p in stale.problems] == ["kpis"] and "1h15m old with 4 stored batch(es)" in \
        stale.problems[0].message
    assert judge(obs(kpi_as_of=NOW - dt.timedelta(days=3), kpi_pending=0)).problems == ()  # nothing new: not stale
    never = judge(obs(kpi_as_of=None, kpi_pending=2))
    assert "no rollup run yet; 2 stored batch(es)" in never.problems[0].message
    tighter = judge(obs(kpi_as_of=NOW - dt.timedelta(minutes=10), kpi_pending=4),
                    Thresholds(kpi_stale_after=dt.timedelta(minutes=5)))
    assert tighter.state == "degraded"


def test_dead_letters_and_a_long_overdue_notification_are_warnings():
    assert judge(obs(notify_dead=0, notify_oldest_due=NOW - dt.timedelta(minutes=4))).problems == ()
    verdict = judge(obs(notify_dead=3, notify_oldest_due=NOW - dt.timedelta(minutes=7)))
    assert verdict.state == "degraded" and verdict.exit_code == 0
    assert [(p.severity, p.check) for p in verdict.problems] == [(WARNING, "notifications")] * 2
    assert "3 notification(s) dead-lettered" in verdict.problems[0].message
    assert "due for 7m00s: is `txnmon notify` running?" in verdict.problems[1].message
