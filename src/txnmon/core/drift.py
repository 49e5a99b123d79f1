"""Drift of the risk model: the population stability index (PSI) of a current sample against the
reference kept at training time, for the score and for each feature. Pure: no clock, no I/O.

A reference is fixed bins cut at the training sample's quantiles, and the share of that sample in each
bin. The current sample is counted into the same bins; PSI = sum over bins of (cur - ref) * ln(cur / ref),
with an empty bin's share raised to EPSILON so that one empty bin gives a large, finite value rather
than infinity. PSI >= 0, and 0 when the shares are equal.

Thresholds (the usual credit-scoring reading of PSI):
- below 0.1: stable;
- 0.1 to 0.25: moving (worth a look, no notification);
- above 0.25: drifted (the quality run notifies).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

BINS = 10
EPSILON = 1e-4  # share given to an empty bin: ln(0) would make the index infinite
STABLE_BELOW = 0.1
DRIFTED_ABOVE = 0.25
SCORE = "score"  # the reference's and the report's name for the model's score
MIN_SAMPLE = 100  # fewer current values than this: PSI is noise, reported but never "drifted"


def reference(values: Iterable[float], bins: int = BINS) -> dict[str, list[float]]:
    """Bin edges (the interior cut points, at the sample's quantiles, repeated ones dropped so a value
    that dominates keeps one bin) and the sample's share in each of the len(edges) + 1 bins."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        raise ValueError("a reference needs at least one value")
    edges: list[float] = []
    for i in range(1, bins):
        cut = ordered[min(len(ordered) - 1, (i * len(ordered)) // bins)]
        if cut > ordered[0] and (not edges or cut > edges[-1]):
            edges.append(cut)
    return {"edges": edges, "shares": shares(ordered, edges)}


def shares(values: Iterable[float], edges: Sequence[float]) -> list[float]:
    """Each value's bin: bin i holds edges[i-1] <= v < edges[i] (the first and last bins are open)."""
    counts = [0] * (len(edges) + 1)
    n = 0
    for v in values:
        counts[bisect.bisect_right(edges, float(v))] += 1
        n += 1
    return [c / n for c in counts] if n else [0.0] * len(counts)


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """The population stability index of `actual` shares against `expected` shares (same bins)."""
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} reference bins, {len(actual)} current ones")
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, epsilon), max(a, epsilon)
        total += (a - e) * math.log(a / e)
    return total


def status(value: float | None, n: int = MIN_SAMPLE) -> str:
    if value is None:
        return "no reference"
    if n < MIN_SAMPLE:
        return "too few"
    if value > DRIFTED_ABOVE:
        return "drifted"
    return "stable" if value < STABLE_BELOW else "moving"


def model_reference(scores: Sequence[float], rows: Sequence[Sequence[float]], names: Sequence[str],
                    bins: int = BINS) -> dict[str, Any]:
    """What a registered model keeps: the score's reference and each feature's, by name."""
    return {"bins": bins, SCORE: reference(scores, bins),
            "features": {name: reference((r[i] for r in rows), bins) for i, name in enumerate(names)}}


def compare(ref: Mapping[str, Any] | None, samples: Mapping[str, Sequence[float]]) -> list[dict[str, Any]]:
    """One row per sample (SCORE, or a feature name): n, PSI and status against the reference; a model
    registered without a reference (or a feature it does not hold) says "no reference"."""
    out = []
    for name, values in samples.items():
        bins = None
        if ref:
            bins = ref.get(SCORE) if name == SCORE else (ref.get("features") or {}).get(name)
        value = psi(bins["shares"], shares(values, bins["edges"])) if bins and values else None
        out.append({"name": name, "n": len(values), "psi": value,
                    "status": status(value, len(values)) if value is not None or not bins else "no data"})
    return out
