"""The labelled replay, the holdout and the figures (src/txnmon/core/risk_model.py), and a model
trained on a small generated day (src/txnmon/core/boosting.py)."""

from __future__ import annotations

import datetime as dt
import functools
from zoneinfo import ZoneInfo

import pytest

from txnmon.core import boosting, features, risk_model
from txnmon.core.backtest import normalise_rows
from txnmon.core.rules import load_rules
from txnmon.errors import InvalidInputFile
from txnmon.settings import DEFAULT_RULES_FILE
from txnmon.synthetic.generator import GeneratorSpec, generate

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@functools.cache
def small_day() -> risk_model.TrainingSet:
    frame = generate(GeneratorSpec(rows=4_000, users=400, fraud_rate=0.03, seed=11)).astype(str)
    rows = [{k: ("" if v == "nan" else v) for k, v in r.items()} for r in frame.to_dict("records")]
    txs, rejected = normalise_rows(rows, ZoneInfo("UTC"), NOW)
    assert rejected == 0
    return risk_model.training_set(txs, load_rules(DEFAULT_RULES_FILE))


def test_the_replay_gives_one_row_per_transaction_with_its_label_and_the_rules_verdict() -> None:
    data = small_day()
    assert len(data) == 4_000 == len(data.labels) == len(data.rule_alerted) == len(data.times)
    assert 60 < sum(data.labels) < 200  # about 3% fraud
    assert all(len(r) == len(features.FEATURE_NAMES) for r in data.rows)
    assert 0 < sum(data.rule_alerted) < len(data) / 10
    # the rules catch mostly fraud: the replay saw the same history the detector judged with
    flagged_fraud = sum(1 for y, f in zip(data.labels, data.rule_alerted, strict=True) if y and f)
    assert flagged_fraud > sum(data.rule_alerted) / 2


def test_an_unlabelled_transaction_is_refused() -> None:
    tx = {"transaction_id": "t1", "user_id": "u", "amount": 5.0, "location": "Pune",
          "event_time": NOW, "type": "purchase", "status": "success"}
    with pytest.raises(InvalidInputFile, match="labelled"):
        risk_model.training_set([tx], load_rules(DEFAULT_RULES_FILE))


def test_the_time_split_trains_on_the_earlier_rows() -> None:
    train, test = risk_model.time_split(small_day())
    assert len(train) + len(test) == 4_000
    assert 0.65 < len(train) / 4_000 < 0.75
    assert max(train.times) < min(test.times)


def test_auc_of_hand_made_scores() -> None:
    assert risk_model.auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert risk_model.auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert risk_model.auc([0, 1], [0.5, 0.5]) == 0.5  # a tie counts half
    assert risk_model.auc([0, 1, 0, 1], [0.1, 0.4, 0.5, 0.8]) == 0.75
    assert risk_model.auc([1, 1], [0.1, 0.2]) is None


def test_top_k_never_flags_more_than_the_rules_did() -> None:
    flags, threshold = risk_model.top_k_flags([0.9, 0.5, 0.5, 0.1], 2)
    assert flags == [True, False, False, False] and threshold == 0.5  # the tie at the k-th stays out
    flags, threshold = risk_model.top_k_flags([0.9, 0.7, 0.5], 2)
    assert flags == [True, True, False] and threshold == 0.7
    assert risk_model.top_k_flags([0.3], 0) == ([False], None)


def test_a_model_on_a_small_day_ranks_fraud_first_and_is_deterministic() -> None:
    train, test = risk_model.time_split(small_day())
    model = boosting.fit(train.rows, train.labels, rounds=40)
    scores = boosting.scores(model, test.rows)
    figures = risk_model.evaluate(test, scores)
    assert figures["auc"] > 0.9, figures
    assert figures["rules_alerts"] == sum(test.rule_alerted)
    assert figures["model_at_rules_count"]["flagged"] <= figures["rules_alerts"]
    assert figures["model_at_rules_count"]["precision"] > 0.5, figures
    raw = boosting.to_bytes(model)
    assert boosting.to_bytes(boosting.fit(train.rows, train.labels, rounds=40)) == raw
    assert boosting.scores(boosting.from_bytes(raw), test.rows) == pytest.approx(scores)
