"""VADER's score of a review text: the sign is right on plain texts, and no text stops the walk."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from txnmon.adapters import sentiment
from txnmon.adapters.sentiment import MAX_PIECES, MAX_WORDS, SCORER, pieces, score_text
from txnmon.core.event_contracts import MAX_REVIEW_CHARS
from txnmon.synthetic.stock_reviews import TEXTS


def test_a_clearly_positive_and_a_clearly_negative_text():
    assert score_text("Excellent, exactly what I wanted! Love it, great quality.") > 0.5
    assert score_text("Terrible quality, it broke after two days. Very disappointed, awful.") < -0.5


def test_the_generated_texts_score_on_the_side_of_their_rating():
    assert all(score_text(t) > 0 for r in (4, 5) for t in TEXTS[r])
    # a lexicon misses some complaints ("Not as described ...", "Below expectations ..." score 0.0):
    # none of the low ratings' texts is positive, and each rating's mean is clearly negative
    low = [[score_text(t) for t in TEXTS[r]] for r in (1, 2)]
    assert all(s <= 0 for scores in low for s in scores)
    assert all(sum(scores) / len(scores) < -0.3 for scores in low)


def test_the_scorer_names_its_version():
    assert SCORER.startswith("vader-3.")


def test_empty_and_blank_texts_are_neutral():
    assert score_text("") == 0.0 and score_text(" \n\t ") == 0.0


def test_hostile_texts_score_within_the_scale():
    hostile = ["{\"$where\": \"sleep(1000)\"}", "<script>alert(1)</script>", "\x00\x01\x02", "😡" * 2000,
               "NOT " * 1250, "!" * MAX_REVIEW_CHARS, "but " * 1250, "\u202e\u200b\ufeff", "ñ" * 5000]
    for text in hostile:
        assert -1.0 <= score_text(text) <= 1.0


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_scores_within_the_scale(text):
    assert -1.0 <= score_text(text) <= 1.0


def test_a_review_of_one_piece_scores_as_vader_scores_the_whole_text():
    vader = SentimentIntensityAnalyzer()
    texts = [t for ts in TEXTS.values() for t in ts]
    texts += [t + " 😀" for t in texts] + ["Great!!  Really\n\ngreat :) but the box was crushed 😡"]
    for text in texts:
        assert score_text(text) == vader.polarity_scores(text)["compound"], text


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from("ab .!?\n"), max_size=400))
def test_pieces_keep_every_word_in_order_and_stay_short(text):
    cut = list(pieces(text))
    assert all(1 <= len(p.split()) <= MAX_WORDS for p in cut)
    assert " ".join(cut).split() == text.split()


def test_the_work_on_one_text_is_bounded_whatever_it_holds(monkeypatch):
    # VADER's cost is quadratic in the words of what it is given (a 5,000-character review took 0.5 s,
    # 5,000 emojis 1.3 s): it is only ever given MAX_PIECES pieces of at most MAX_WORDS words, emojis
    # counted as the words they stand for
    analyzer = sentiment._analyzer()
    seen: list[str] = []
    real = analyzer.polarity_scores
    monkeypatch.setattr(analyzer, "polarity_scores", lambda text: seen.append(text) or real(text))
    for text in ["😀" * MAX_REVIEW_CHARS, ("Great product but the delivery was awful. " * 200)[:MAX_REVIEW_CHARS],
                 "good " * 1000]:
        seen.clear()
        assert -1.0 <= score_text(text) <= 1.0
        assert 1 <= len(seen) <= MAX_PIECES
        assert all(len(p.split()) <= MAX_WORDS for p in seen)
