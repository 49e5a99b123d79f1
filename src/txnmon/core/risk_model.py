"""The learned risk score's data: a labelled day replayed into feature rows, the time-based holdout,
and the figures a model is judged by. Pure: no clock, no I/O (src/txnmon/jobs/models.py reads the
files, times the fit and stores the artifact; src/txnmon/core/boosting.py fits).

A row's features come from the state the rules keep (src/txnmon/core/features.py): each transaction
is judged by a `Detector` in arrival order and recorded, exactly as `run_backtest` does, so a row sees
the history the processor would have held, and the rules' own verdict on the same row is known. That
verdict sets the operating point the model is compared at: its top-k scores, k = the rules' alerts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from txnmon.core import features
from txnmon.core.backtest import LABEL
from txnmon.core.rules import Detector, RuleSet
from txnmon.core.rules.state import event_from
from txnmon.errors import InvalidInputFile

TRAIN_SHARE = 0.7  # one day: its first 70% of rows by event time train, the rest test


@dataclass
class TrainingSet:
    """Feature rows in arrival order, with each row's label and what the rules said of it."""

    rows: list[tuple[float, ...]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)  # 1: a fraud row of the generated day
    times: list[dt.datetime] = field(default_factory=list)
    rule_alerted: list[bool] = field(default_factory=list)  # a live, unsuppressed rule alert on it

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, keep: Sequence[bool]) -> TrainingSet:
        out = TrainingSet()
        for i, k in enumerate(keep):
            if k:
                out.rows.append(self.rows[i])
                out.labels.append(self.labels[i])
                out.times.append(self.times[i])
                out.rule_alerted.append(self.rule_alerted[i])
        return out

    @property
    def span(self) -> tuple[dt.datetime, dt.datetime] | None:
        return (min(self.times), max(self.times)) if self.times else None


def training_set(transactions: Iterable[Mapping[str, Any]], ruleset: RuleSet) -> TrainingSet:
    """Every labelled transaction through a fresh Detector in the given (arrival) order: its features
    from the user's history before it, then judged and recorded like the backtest does."""
    detector = Detector(ruleset)
    out = TrainingSet()
    for tx in transactions:
        if LABEL not in tx:
            raise InvalidInputFile(f"transaction {tx.get('transaction_id')!r} has no {LABEL} column: "
                                   "training needs a labelled file (`txnmon generate`)")
        event = event_from(tx)
        out.rows.append(features.compute(event, detector.state.prior(str(tx["user_id"]), event)))
        judgement = detector.judge(tx)
        detector.record(judgement)
        out.labels.append(1 if tx[LABEL] else 0)
        out.times.append(event.event_time)
        out.rule_alerted.append(any(h.mode == "live" and not h.suppressed_by for h in judgement.hits))
    return out


def joined(sets: Sequence[TrainingSet]) -> TrainingSet:
    """Several files' rows as one training set, each file's in its own arrival order (each was replayed
    through its own state: a generated day's users are not another day's)."""
    out = TrainingSet()
    for part in sets:
        out.rows += part.rows
        out.labels += part.labels
        out.times += part.times
        out.rule_alerted += part.rule_alerted
    return out


def time_split(data: TrainingSet, share: float = TRAIN_SHARE) -> tuple[TrainingSet, TrainingSet]:
    """(train, test): the rows before the event time that `share` of the rows come before, the rest.
    By rows, not by the clock: a few late or next-day rows must not leave the test side nearly empty."""
    if len(data.times) < 2:
        raise InvalidInputFile("too few transactions to train and test on")
    cut = sorted(data.times)[min(int(len(data.times) * share), len(data.times) - 1)]
    return data.subset([t < cut for t in data.times]), data.subset([t >= cut for t in data.times])


def auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); None with one class."""
    pairs = sorted(zip(scores, labels, strict=True))
    positives = sum(labels)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    rank_sum = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        mid_rank = (i + j + 1) / 2  # ranks i+1..j share their mean
        rank_sum += mid_rank * sum(label for _, label in pairs[i:j])
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def precision_recall(labels: Sequence[int], flagged: Sequence[bool]) -> dict[str, float | int | None]:
    true_pos = sum(1 for y, f in zip(labels, flagged, strict=True) if y and f)
    n_flagged = sum(1 for f in flagged if f)
    positives = sum(labels)
    return {"flagged": n_flagged, "true_positives": true_pos,
            "precision": true_pos / n_flagged if n_flagged else None,
            "recall": true_pos / positives if positives else None}


def top_k_flags(scores: Sequence[float], k: int) -> tuple[list[bool], float | None]:
    """The k highest scores flagged (ties at the k-th kept out, so never more than k), and the threshold:
    a score at or above it is flagged. None when k is 0."""
    if k <= 0:
        return [False] * len(scores), None
    ranked = sorted(scores, reverse=True)
    threshold = ranked[min(k, len(ranked)) - 1]
    flags = [s >= threshold for s in scores]
    if sum(flags) > k:  # ties at the threshold: only the strictly higher ones
        flags = [s > threshold for s in scores]
    return flags, threshold


def evaluate(test: TrainingSet, scores: Sequence[float]) -> dict[str, Any]:
    """The model's AUC, and its precision and recall when it flags as many rows as the rules alerted,
    next to the rules' own on the same rows."""
    k = sum(test.rule_alerted)
    flags, threshold = top_k_flags(scores, k)
    return {"rows": len(test), "fraud_rows": sum(test.labels), "auc": auc(test.labels, scores),
            "rules_alerts": k, "threshold": threshold,
            "model_at_rules_count": precision_recall(test.labels, flags),
            "rules": precision_recall(test.labels, test.rule_alerted)}
