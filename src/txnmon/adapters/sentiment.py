"""Review sentiment: VADER's compound score (-1 very negative .. +1 very positive) of a text.

VADER (vaderSentiment) is a lexicon and rules: no model to download, no network, the same score for
the same text on every machine with the same version. Its lexicon ships in the wheel and is read
once per process. `SCORER` names the version in every stored score, so scores of another version
are told apart rather than mixed silently.
"""

from __future__ import annotations

import functools
import logging
from importlib import metadata

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

__all__ = ["SCORER", "score_text"]

log = logging.getLogger("txnmon.adapters")

SCORER = f"vader-{metadata.version('vaderSentiment')}"


@functools.cache
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()  # reads the lexicon files: tens of milliseconds, once


def score_text(text: str) -> float:
    """The compound sentiment of `text`, in [-1, 1]; 0.0 for an empty or unscorable text.

    A review's text is anybody's input: a text the library fails on must not stop the walk that
    scores it for ever, so it counts as neutral (and is logged).
    """
    if not isinstance(text, str) or not text.strip():
        return 0.0
    try:
        compound = float(_analyzer().polarity_scores(text)["compound"])
    except Exception:  # any failure of the library on one text: that text is neutral
        log.warning("sentiment: text of %d characters could not be scored; counted as neutral", len(text))
        return 0.0
    return min(1.0, max(-1.0, compound))
