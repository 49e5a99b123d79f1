"""The risk model's signal in the typologies: `model_score`, present when the promoted model scored
the transaction at least the signal's threshold (the rules file's `signals.model_score`).

The score is not computed here: the batch is scored in one vectorised call before it is judged
(src/txnmon/core/scoring.py), and each transaction's `ModelScore` is handed to `Detector.judge`. Without
a model there is no `ModelScore`, and the signal is absent: verdicts are those of the rules alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from txnmon.core.rules.rulebook import ModelScoreSignal
from txnmon.core.rules.windows import Evidence


class Factor(NamedTuple):
    """One feature's share of a score (LightGBM's pred_contrib, in log-odds), said against the user's own
    baseline ("amount 41,000 is 9.1x this user's median of 4,500")."""

    feature: str
    value: float
    contribution: float
    text: str


@dataclass(frozen=True)
class ModelScore:
    """What the model said of one transaction: its version, the fraud probability, and the top
    contributing features (only when the score reaches the signal's threshold: given, or worked out by
    `explain` when a typology fires with the signal present, see `explained`)."""

    version: str
    score: float
    factors: tuple[Factor, ...] = ()
    # the factors on demand: a row's contributions (TreeSHAP) cost about 0.6 ms, and most scores over a
    # confirming threshold belong to transactions no typology fires on, whose evidence nobody keeps
    explain: Callable[[], tuple[Factor, ...]] | None = field(default=None, compare=False, repr=False)

    def explained(self) -> ModelScore:
        """This score with its factors worked out (itself when it has them, or nothing can give them)."""
        if self.factors or self.explain is None:
            return self
        return ModelScore(self.version, self.score, self.explain())


def model_score_signal(event: Any, prior: Any, cfg: ModelScoreSignal) -> Evidence | None:
    """The catalogue's entry: with no score handed in, the signal is absent (never an error)."""
    return None


def model_evidence(found: ModelScore | None, cfg: ModelScoreSignal) -> Evidence | None:
    """The signal's evidence when the score reaches the threshold, its reason naming the top factors."""
    if found is None or found.score < cfg.threshold:
        return None
    factors = found.factors[:cfg.top_features]
    why = "; ".join(f.text for f in factors)
    reason = f"model {found.version} scored {found.score:.2f} (at least {cfg.threshold:g})"
    reason += f": {why}" if why else ""
    return Evidence(reason, measured={
        "score": found.score, "threshold": cfg.threshold, "model_version": found.version,
        "top_features": [{"feature": f.feature, "value": f.value, "contribution": round(f.contribution, 4),
                          "text": f.text} for f in factors]})
