"""The risk model's gradient-boosted trees: LightGBM, chosen over scikit-learn's
HistGradientBoostingClassifier by the figures in docs/model.md (better AUC and precision at the
rules' alert count, a text model that loads without pickle).

Fitting and scoring are deterministic for the same rows (one thread, a fixed seed), so a retrain on
the same files gives the same model. LightGBM is imported only here, and only when a model is fitted
or loaded: `txnmon` commands that never touch a model start without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

LIBRARY = "lightgbm"
ROUNDS = 100
# one thread: deterministic, and on a shared two-core machine OpenMP threads only fight each other
PARAMS: dict[str, Any] = {
    "objective": "binary", "learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 20,
    "num_threads": 1, "seed": 0, "deterministic": True, "force_row_wise": True, "verbose": -1,
}


def library_version() -> str:
    import lightgbm

    return str(lightgbm.__version__)


def fit(rows: Sequence[Sequence[float]], labels: Sequence[int], rounds: int = ROUNDS) -> Any:
    """A booster trained on the rows (feature vectors) and their 0/1 labels."""
    import lightgbm
    import numpy as np

    data = lightgbm.Dataset(np.asarray(rows, dtype=np.float64), np.asarray(labels, dtype=np.float64))
    return lightgbm.train(PARAMS, data, num_boost_round=rounds)


# predicting: one thread too. A batch is a few thousand rows; OpenMP's threads (a loaded model's default:
# every core) cost more to wake than they save, and take the core the processor runs on. Each row's value
# is the same whatever the threads.
PREDICT: dict[str, Any] = {"num_threads": 1}


def scores(model: Any, rows: Sequence[Sequence[float]]) -> list[float]:
    """The fraud probability of each row, 0..1."""
    import numpy as np

    if not len(rows):
        return []
    return model.predict(np.asarray(rows, dtype=np.float64), **PREDICT).tolist()  # type: ignore[no-any-return]


def contributions(model: Any, rows: Sequence[Sequence[float]]) -> list[list[float]]:
    """Each row's per-feature contributions to its raw score (log-odds; SHAP values, LightGBM's
    pred_contrib), the features' in order, then the bias."""
    import numpy as np

    if not len(rows):
        return []
    return model.predict(np.asarray(rows, dtype=np.float64), pred_contrib=True, **PREDICT).tolist()  # type: ignore[no-any-return]


def to_bytes(model: Any) -> bytes:
    """The model as LightGBM's own text format: no pickle, so loading a file runs no code from it."""
    return str(model.model_to_string()).encode("utf-8")


def from_bytes(raw: bytes) -> Any:
    import lightgbm

    return lightgbm.Booster(model_str=raw.decode("utf-8"))
