"""A backtest split by user (src/txnmon/core/backtest_shards.py, src/txnmon/jobs/backtest_workers.py): the
shares judged apart and merged report what one run over every transaction reports."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from txnmon.core import backtest
from txnmon.core.backtest_shards import merge, shares_by_user, splittable
from txnmon.core.rules import load_rules
from txnmon.jobs import backtest_workers
from txnmon.settings import DEFAULT_RULES_FILE
from txnmon.synthetic.generator import GeneratorSpec, generate

from .test_scoring import RatioModel, ruleset

ZONE = ZoneInfo("Asia/Kolkata")


def labelled_day(rows: int, seed: int = 5) -> list[dict]:
    frame = generate(GeneratorSpec(rows=rows, users=rows // 10, fraud_rate=0.03, seed=seed))
    txs, rejected = backtest.normalise_rows(frame.astype(str).to_dict("records"), ZONE)
    assert not rejected and txs
    return txs


def judged_in_shares(txs: list[dict], rules, n: int, model=None) -> backtest.BacktestResult:
    parts = [backtest.judge(share, rules, None, model) for share in shares_by_user(txs, n)]
    merged = merge(parts, rules.version, model.version if model is not None else None)
    return backtest.measured(merged, txs, 3)


def report(result: backtest.BacktestResult) -> dict:
    doc = backtest.to_json(result)
    return {**doc, "alert_ids": sorted(result.alerts), "shadow_ids": sorted(result.shadow_alerts),
            "alerted": sorted(result.alerted_transactions), "examples": dict(sorted(result.examples.items())),
            "scores": dict(sorted(result.scores.items()))}


def test_each_user_lands_in_one_share_in_arrival_order() -> None:
    txs = labelled_day(2_000)
    shares = shares_by_user(txs, 4)
    assert sorted(len(s) for s in shares) != [len(txs)] and sum(len(s) for s in shares) == len(txs)
    owners = {}
    for i, share in enumerate(shares):
        for tx in share:
            assert owners.setdefault(tx["user_id"], i) == i
        position = {id(tx): k for k, tx in enumerate(txs)}
        assert [position[id(tx)] for tx in share] == sorted(position[id(tx)] for tx in share)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_shares_report_what_one_run_reports(n: int) -> None:
    txs = labelled_day(4_000)
    rules = load_rules(DEFAULT_RULES_FILE)
    whole = backtest.run_backtest(txs, rules, 3)
    assert len(whole.alerts_by_rule) >= 3 and whole.labelled  # something to compare
    assert report(judged_in_shares(txs, rules, n)) == report(whole)


def test_with_a_model_the_scores_and_alerts_are_the_same() -> None:
    txs = labelled_day(3_000, seed=8)
    rules = ruleset()
    whole = backtest.run_backtest(txs, rules, 3, model=RatioModel())
    assert whole.scores and whole.alerts_by_rule.get("learned_risk")
    assert report(judged_in_shares(txs, rules, 3, RatioModel())) == report(whole)


minute = st.integers(0, 600)
arrival = st.tuples(st.sampled_from(["U1", "U2", "U3", "U4"]), minute,
                    st.sampled_from([50.0, 900.0, 40_000.0, 150_000.0]),
                    st.sampled_from(["Mumbai", "Delhi", "London", "Nowhere"]),
                    st.sampled_from(["success", "failed"]), st.sampled_from(["purchase", "refund"]),
                    st.integers(0, 30))


@hsettings(max_examples=60, deadline=None)
@given(st.lists(arrival, min_size=1, max_size=40), st.integers(1, 4))
def test_same_input_same_verdicts_whatever_the_split(arrivals, n) -> None:
    """Users, times, amounts, places, late arrivals and re-sent ids (a user's id number repeats) at random."""
    start = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    txs = [{"transaction_id": f"{user}-T{k}", "user_id": user, "amount": amount, "location": place, "status": status,
            "type": kind, "payment_method": "UPI", "event_time": start + dt.timedelta(minutes=m),
            "timestamp": (start + dt.timedelta(minutes=m)).isoformat()}
           for user, m, amount, place, status, kind, k in arrivals]
    rules = load_rules(DEFAULT_RULES_FILE)
    assert report(judged_in_shares(txs, rules, n)) == report(backtest.run_backtest(txs, rules, 3))


def test_more_users_than_a_detector_keeps_are_not_split() -> None:
    txs = [{"user_id": u} for u in ("a", "b", "c", "a")]
    assert splittable(txs, 3) and not splittable(txs, 2)


def test_processes_judge_the_shares(monkeypatch) -> None:
    """Spawned processes, as `txnmon backtest --workers 2` runs them; progress reaches the total."""
    txs = labelled_day(3_000, seed=9)
    rules = load_rules(DEFAULT_RULES_FILE)
    monkeypatch.setattr(backtest_workers, "MIN_ROWS_PER_WORKER", 1_000)
    seen: list[tuple[int, int]] = []
    result = backtest_workers.run_backtest(txs, rules, 3, lambda done, total: seen.append((done, total)), workers=2)
    assert report(result) == report(backtest.run_backtest(txs, rules, 3))
    assert seen[0] == (0, len(txs)) and seen[-1] == (len(txs), len(txs)) and len(seen) == 1 + 2 * 4


def test_few_rows_stay_in_this_process(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("no process pool for a small backtest")

    monkeypatch.setattr(backtest_workers.concurrent.futures, "ProcessPoolExecutor", refuse)
    txs = labelled_day(1_000)
    rules = load_rules(DEFAULT_RULES_FILE)
    one = backtest.run_backtest(txs, rules, 3)
    assert report(backtest_workers.run_backtest(txs, rules, 3, workers=8)) == report(one)


def test_an_id_under_two_users_counts_once() -> None:
    """A conflicting re-send (the processor refuses it as a conflict): judged in each user's share as one run
    judges it in each user's history; its alert id is one alert, as in one run."""
    start = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    txs = [{"transaction_id": "T1", "user_id": user, "amount": 150_000.0, "location": "Mumbai", "status": "success",
            "type": "purchase", "payment_method": "UPI", "event_time": start, "timestamp": start.isoformat()}
           for user in ("U1", "U2", "U3")]
    rules = load_rules(DEFAULT_RULES_FILE)
    whole, split = backtest.run_backtest(txs, rules), judged_in_shares(txs, rules, 3)
    assert len(shares_by_user(txs, 3)) > 1
    assert whole.alerts == split.alerts == {"T1:high_amount"}
    assert whole.alerts_by_rule == split.alerts_by_rule == {"high_amount": 1}
