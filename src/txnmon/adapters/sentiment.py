"""Review sentiment: VADER's compound score (-1 very negative .. +1 very positive) of a text.

VADER (vaderSentiment) is a lexicon and rules: no model to download, no network, the same score for
the same text on every machine with the same version. Its lexicon ships in the wheel and is read
once per process. `SCORER` names the version in every stored score, so scores of another version
are told apart rather than mixed silently.

VADER's time grows with the square of a text's words (its negation check lower-cases the whole
text again for every word it weighs: 0.5 s for one 4,000-character review on this machine), so a
text is scored in pieces of at most MAX_WORDS words, cut at sentence ends where it can be, and the
pieces' compound scores are averaged (what VADER's authors suggest for paragraphs). Emojis are
replaced by their descriptions first, as VADER does, so that their words count too (one emoji is
up to a handful of words). A review of up to MAX_WORDS words, nearly all of them, is one piece:
VADER's own score of the whole text. Only the first MAX_PIECES pieces are scored (600 words; a
review may hold up to 5,000 characters, which as emojis are 20,000 words): the cost of one text is
bounded whatever it holds.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
from collections.abc import Iterator
from importlib import metadata

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

__all__ = ["MAX_PIECES", "MAX_WORDS", "SCORER", "pieces", "score_text"]

log = logging.getLogger("txnmon.adapters")

SCORER = f"vader-{metadata.version('vaderSentiment')}"
MAX_WORDS = 30  # a piece's words: VADER's cost is quadratic in them, the whole text's is then linear
MAX_PIECES = 20  # ... and bounded: a text's words after the first MAX_WORDS * MAX_PIECES are not read
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def _described(text: str, emojis: dict[str, str]) -> str:
    """Each emoji replaced by its description, exactly as VADER's polarity_scores does it first."""
    out: list[str] = []
    prev_space = True
    for char in text:
        if char in emojis:
            if not prev_space:
                out.append(" ")
            out.append(emojis[char])
            prev_space = False
        else:
            out.append(char)
            prev_space = char == " "
    return "".join(out).strip()


def pieces(text: str) -> Iterator[str]:
    """`text` as consecutive pieces of at most MAX_WORDS words: whole sentences packed together while
    they fit, a longer sentence cut every MAX_WORDS words."""
    piece: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        words = sentence.split()
        if piece and len(piece) + len(words) > MAX_WORDS:
            yield " ".join(piece)
            piece = []
        while len(words) > MAX_WORDS:
            yield " ".join(words[:MAX_WORDS])
            words = words[MAX_WORDS:]
        piece += words
    if piece:
        yield " ".join(piece)


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
        analyzer = _analyzer()
        scores = [float(analyzer.polarity_scores(p)["compound"])
                  for p in itertools.islice(pieces(_described(text, analyzer.emojis)), MAX_PIECES)]
        compound = sum(scores) / len(scores) if scores else 0.0
    except Exception:  # any failure of the library on one text: that text is neutral
        log.warning("sentiment: text of %d characters could not be scored; counted as neutral", len(text))
        return 0.0
    return min(1.0, max(-1.0, compound))
