"""A backtest split by user (src/txnmon/core/backtest_shards.py, src/txnmon/jobs/backtest_workers.py): the
shares judged apart and merged report what one run over every transaction reports."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from txnmon.core import backtest
from txnmon.core.backtest_shards import merge, shares_by_user, splittable
from txnmon.core.model_report import weigh_model
from txnmon.core.rules import load_rules, parse_rules
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


@pytest.mark.parametrize("n", [2, 3, 7])
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
START = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
# the shipped rules; a repeat suppressed and a shadow rule; the model weighed, with thresholds raised while it scores
RULESETS = {
    "shipped": lambda: load_rules(DEFAULT_RULES_FILE),
    "suppress_and_shadow": lambda: parse_rules(
        "rules:\n  velocity: {suppress_for: 30m}\n  high_amount: {threshold: 1000, mode: shadow}\n"),
    "model_weighed": lambda: weigh_model(load_rules(DEFAULT_RULES_FILE), 0.5, 30, 30),
}


def transactions(arrivals) -> list[dict]:
    """A user's id number repeats: re-sends, and late arrivals (times are not in arrival order)."""
    return [{"transaction_id": f"{user}-T{k}", "user_id": user, "amount": amount, "location": place,
             "status": status, "type": kind, "payment_method": "UPI", "event_time": START + dt.timedelta(minutes=m),
             "timestamp": (START + dt.timedelta(minutes=m)).isoformat()}
            for user, m, amount, place, status, kind, k in arrivals]


@hsettings(max_examples=40, deadline=None)
@given(st.lists(arrival, min_size=1, max_size=40), st.integers(1, 4), st.sampled_from(sorted(RULESETS)))
def test_same_input_same_verdicts_whatever_the_split(arrivals, n, rules_name) -> None:
    """Users, times, amounts, places, late arrivals and re-sends at random, under three rulesets."""
    txs = transactions(arrivals)
    rules = RULESETS[rules_name]()
    model = RatioModel() if rules_name == "model_weighed" else None
    assert report(judged_in_shares(txs, rules, n, model)) == report(backtest.run_backtest(txs, rules, 3, model=model))


def test_a_chunk_of_re_sends_only_is_judged_with_the_model_in_use(monkeypatch) -> None:
    """Verdicts do not depend on where the model's chunks fall: a chunk with nothing new to score is still
    judged with the model in use (its raised thresholds), and only a chunk the model failed is judged without."""
    monkeypatch.setattr(backtest, "SCORE_CHUNK", 5)
    day = transactions([("U1", m, 900.0 if m % 3 else 40_000.0, "Mumbai", "success", "purchase", m)
                        for m in range(0, 30, 2)])
    again = day + day  # the whole day re-sent: its chunks hold re-sends only
    rules = weigh_model(load_rules(DEFAULT_RULES_FILE), 0.5, 30, 30)
    with_model = backtest.run_backtest(again, rules, model=RatioModel())
    assert with_model.alerts == backtest.run_backtest(day, rules, model=RatioModel()).alerts
    assert report(judged_in_shares(again, rules, 2, RatioModel()))["alert_ids"] == sorted(with_model.alerts)


def test_runs_the_shares_would_judge_apart_are_not_split() -> None:
    txs = [{"user_id": u, "transaction_id": f"{u}1"} for u in ("a", "b", "c")]
    assert splittable(txs, 3) is None
    assert "more than the rules' state.max_users (2" in splittable(txs, 2)
    conflicting = [*txs, {"user_id": "b", "transaction_id": "a1"}]
    assert "'a1' comes with two users" in splittable(conflicting, 10)


def test_a_conflicting_re_send_keeps_the_backtest_in_one_process(monkeypatch, caplog) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("no process pool for a run that cannot be split")

    monkeypatch.setattr(backtest_workers.multiprocessing, "get_context", refuse)
    monkeypatch.setattr(backtest_workers, "MIN_ROWS_PER_WORKER", 10)
    txs = transactions([(user, 0, 150_000.0, "Mumbai", "success", "purchase", 1) for user in ("U1", "U2", "U3")])
    txs += transactions([("U4", m, 50.0, "Delhi", "success", "purchase", m) for m in range(40)])
    for tx in txs[:3]:
        tx["transaction_id"] = "T1"  # under three users
    with caplog.at_level("INFO", logger="txnmon.jobs"):
        result = backtest_workers.run_backtest(txs, load_rules(DEFAULT_RULES_FILE), workers=2)
    assert result.alerts_by_rule["high_amount"] == 1 and "'T1' comes with two users" in caplog.text


def test_processes_judge_the_shares_with_the_model(monkeypatch) -> None:
    """Spawned processes, as `txnmon backtest --workers 2` runs them, the model handed to each; progress reaches
    the total, a step per share."""
    txs = labelled_day(3_000, seed=9)
    rules = weigh_model(load_rules(DEFAULT_RULES_FILE), 0.5, 30, 30)
    monkeypatch.setattr(backtest_workers, "MIN_ROWS_PER_WORKER", 1_000)
    seen: list[tuple[int, int]] = []
    result = backtest_workers.run_backtest(txs, rules, 3, lambda done, total: seen.append((done, total)),
                                           RatioModel(), workers=2)
    one = backtest.run_backtest(txs, rules, 3, model=RatioModel())
    assert one.scores and report(result) == report(one)
    assert seen[0] == (0, len(txs)) and seen[-1] == (len(txs), len(txs)) and len(seen) == 1 + 2 * 4


def test_a_failing_share_fails_the_backtest_and_leaves_no_process(monkeypatch) -> None:
    txs = labelled_day(3_000, seed=9)
    del txs[-1]["event_time"]  # judging this one raises, in whichever process has its user
    monkeypatch.setattr(backtest_workers, "MIN_ROWS_PER_WORKER", 1_000)
    with pytest.raises(KeyError, match="event_time"):
        backtest_workers.run_backtest(txs, load_rules(DEFAULT_RULES_FILE), workers=2)
    assert multiprocessing.active_children() == []


def test_few_rows_stay_in_this_process(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("no process pool for a small backtest")

    monkeypatch.setattr(backtest_workers.multiprocessing, "get_context", refuse)
    txs = labelled_day(1_000)
    rules = load_rules(DEFAULT_RULES_FILE)
    one = backtest.run_backtest(txs, rules, 3)
    assert report(backtest_workers.run_backtest(txs, rules, 3, workers=8)) == report(one)


def test_the_default_worker_count_honours_a_container_quota(tmp_path) -> None:
    quota = tmp_path / "cpu.max"
    quota.write_text("150000 100000\n")
    assert backtest_workers.available_cpus(quota) == min(2, backtest_workers.available_cpus(tmp_path / "none"))
    quota.write_text("max 100000\n")
    assert backtest_workers.available_cpus(quota) == backtest_workers.available_cpus(tmp_path / "none") >= 1



class DyingModel(RatioModel):
    """A model whose process dies as it is handed over (as a process killed by the OOM killer would)."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os._exit, (3,))


def test_a_process_that_ends_without_its_findings_fails_the_backtest(monkeypatch) -> None:
    """Processes that end without sending their findings: the backtest fails with their exit codes instead
    of waiting, and leaves no process."""
    txs = labelled_day(3_000, seed=9)
    monkeypatch.setattr(backtest_workers, "MIN_ROWS_PER_WORKER", 1_000)
    rules = weigh_model(load_rules(DEFAULT_RULES_FILE), 0.5, 30, 30)
    with pytest.raises(backtest_workers.BacktestProcessError, match=r"exit codes \[3, 3\].*8 of 8 shares"):
        backtest_workers.run_backtest(txs, rules, model=DyingModel(), workers=2)
    assert multiprocessing.active_children() == []
