"""`txnmon backtest --model V --model-weight W`: the rules alone and the rules weighing the model, side by
side per generated pattern and clean behaviour (src/txnmon/core/model_report.py)."""

from __future__ import annotations

import argparse
import json

import pytest

from txnmon.cli.analyst import cmd_backtest
from txnmon.core import features
from txnmon.errors import UsageError
from txnmon.jobs import models
from txnmon.settings import DEFAULT_RULES_FILE, load_settings
from txnmon.synthetic.generator import BEHAVIOURS, PATTERNS, GeneratorSpec, generate, write_csv


class AmountModel:
    """A stand-in for a loaded model: the score is the amount against the user's median, capped at 1."""

    version = "rm-test"

    def score(self, rows):
        i = features.FEATURE_NAMES.index("amount_to_median")
        return [min(max(r[i], 0.0) / 10, 1.0) for r in rows]

    def contributions(self, rows):
        return [[0.0] * (len(r) + 1) for r in rows]


def _args(data, **over) -> argparse.Namespace:
    base = {"rules": str(DEFAULT_RULES_FILE), "baseline": None, "data": str(data), "topic": False,
            "model": "rm-test", "model_weight": 30.0, "model_threshold": 0.5, "model_raise": 0.0,
            "model_typology": None, "workers": None, "json": True}
    return argparse.Namespace(**{**base, **over})


@pytest.fixture
def day(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "load", lambda settings, version=None: AmountModel())
    path = tmp_path / "day.csv"
    write_csv(generate(GeneratorSpec(rows=3_000, users=300, fraud_rate=0.03, seed=5)), path)
    return path


def test_the_report_lists_every_pattern_and_behaviour_for_the_rules_alone_and_with_the_model(day, capsys):
    assert cmd_backtest(load_settings(metrics_port=0), _args(day)) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "+model_score@0.5x30+0" in doc["rules_version"]
    table = doc["model_comparison"]
    assert [p["pattern"] for p in table["patterns"]] == sorted(PATTERNS)
    assert [b["behaviour"] for b in table["behaviours"]] == sorted(BEHAVIOURS)
    # weighed without raising a threshold, the model only adds alerts: never fewer caught
    assert all(p["model_caught"] >= p["rules_caught"] for p in table["patterns"])
    assert table["overall"]["model_false"] >= table["overall"]["rules_false"]

    assert cmd_backtest(load_settings(metrics_port=0), _args(day, json=False)) == 0
    text = capsys.readouterr().out
    assert "rules alone vs rules + model" in text and all(p in text for p in PATTERNS)


def test_model_weight_needs_a_model_and_known_typologies(day):
    with pytest.raises(UsageError, match="--model-weight needs --model"):
        cmd_backtest(load_settings(metrics_port=0), _args(day, model=None))
    with pytest.raises(UsageError, match="no typology nope"):
        cmd_backtest(load_settings(metrics_port=0), _args(day, model_typology=["nope"]))
