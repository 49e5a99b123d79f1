"""bench/cpu.py's model step: what a promoted model's scoring adds, against the same run's figures."""

from __future__ import annotations

from typing import Any

import pytest

from bench import cpu


def test_the_cost_is_with_over_without_less_one(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def measured(n: int, batch: int, model: Any = None, *_: Any) -> dict[str, Any]:
        seen.update(n=n, model=model)
        return {"cpu_us_per_tx_1d": 110.0, "cpu_us_per_tx_30d": 150.0,
                "cpu_stages_1d": {"judge": 90.0}, "cpu_stages_30d": {"judge": 130.0}}

    monkeypatch.setattr(cpu, "cpu_figures", measured)
    monkeypatch.setattr(cpu, "bench_model", lambda: "a model")
    out = cpu.model_figures(1000, {"cpu_us_per_tx_1d": 100.0, "cpu_us_per_tx_30d": 100.0})
    assert seen == {"n": 1000, "model": "a model"}
    assert out["model_cost_1d"] == 0.1 and out["model_cost_30d"] == 0.5
    assert out["cpu_model_us_per_tx_1d"] == 110.0 and out["cpu_model_stages_30d"] == {"judge": 130.0}
    # without the run's own figure (its step failed) no cost is made up
    assert "model_cost_1d" not in cpu.model_figures(1000, {})
