"""bench/cpu.py's model step: what a promoted model's scoring adds, against runs without it in the same run."""

from __future__ import annotations

from typing import Any

import pytest

from bench import cpu


def test_the_cost_is_the_least_with_over_the_least_without(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[tuple[str, Any]] = []
    # per history: with, without, with, without, with
    figures = iter([120.0, 105.0, 110.0, 104.0, 125.0, 150.0, 140.0, 160.0, 141.0, 155.0])

    def measured(rows: Any, batch: int, model: Any = None) -> dict[str, Any]:
        runs.append((rows, model))
        us = next(figures)
        return {"us_per_tx": us, "stages_us_per_tx": {"judge": us - 10}}

    monkeypatch.setattr(cpu, "cpu_per_transaction", measured)
    monkeypatch.setattr(cpu, "bench_model", lambda: "a model")
    monkeypatch.setattr(cpu, "history_rows", lambda n, days, per_user: f"{n} rows over {days} days")
    out = cpu.model_figures(1000, {"cpu_us_per_tx_1d": 100.0, "cpu_us_per_tx_30d": 145.0})
    # alternated, the same rows each time
    assert [m for _, m in runs] == ["a model", None, "a model", None, "a model"] * 2
    assert [r for r, _ in runs] == ["1000 rows over 1 days"] * 5 + ["1000 rows over 30 days"] * 5
    assert out["cpu_model_us_per_tx_1d"] == 110.0 and out["cpu_model_stages_1d"] == {"judge": 100.0}
    assert out["model_cost_1d"] == 0.1  # 110 (the least with) over 100 (the cpu step's, the least without)
    assert out["model_cost_30d"] == 0.071  # 150 over 140, this step's own run without (the cpu step: 145)
    assert out["cpu_model_runs_30d"] == {"with": [150.0, 160.0, 155.0], "without": [140.0, 141.0]}


def test_without_the_cpu_steps_figure_the_steps_own_run_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    def measured(rows: Any, batch: int, model: Any = None) -> dict[str, Any]:
        return {"us_per_tx": 120.0 if model else 100.0, "stages_us_per_tx": {}}

    monkeypatch.setattr(cpu, "cpu_per_transaction", measured)
    monkeypatch.setattr(cpu, "bench_model", lambda: "a model")
    monkeypatch.setattr(cpu, "history_rows", lambda n, days, per_user: [])
    assert cpu.model_figures(10, {})["model_cost_1d"] == 0.2
