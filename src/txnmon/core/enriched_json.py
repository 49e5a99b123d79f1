"""The enriched message's bytes: msgspec where it writes what `json` writes, known without walking the
document where `_judge` (src/txnmon/core/batch.py) built it.

The document is the validated input plus the fields judging adds. The input's verdict comes from the
fingerprint (`fastjson.plain`); the added fields are judged here from how they were built. A model's
score is the one value that is often not "plain": a fraud probability is mostly far below 1e-4, which
msgspec writes in fixed notation (`0.000012`) where `json` writes `1.2e-05`. Sent to `json` for that,
scored documents cost more to write than the score cost to compute (issue 32). So the score is written
as `json` writes it (`fastjson.exact_float`) and the rest by msgspec: the same bytes as before.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from txnmon.core import fastjson
from txnmon.core.records import SourceRecord

__all__ = ["added_is_plain", "message_bytes"]


def added_is_plain(added: dict[str, Any], record: SourceRecord) -> bool:
    """Whether msgspec writes `added` (the fields `_judge` added) as `json` does, a model's score written
    by `exact_float`: known from how they were built when they are the usual ones, else walked."""
    scored = added.get("model")
    if scored is None:
        return _plain_as_built(added, record) or fastjson.plain(added)
    if not _score_as_built(scored):
        return False  # a score `json` writes its own way (NaN, infinity): the whole message goes to `json`
    return _plain_as_built(added, record) or fastjson.plain({**added, "model": None})


def message_bytes(doc: dict[str, Any], added: dict[str, Any], proven: bool) -> bytes:
    """The enriched message of `doc`, built with `added` (`proven`: `added_is_plain` of it, and the input
    plain too). The score is looked up in `added`: an input's own field named `model` is not a score."""
    scored = added.get("model") if proven else None
    if scored is None:
        return fastjson.to_json_bytes(doc, proven)
    # the same document with its score as `json` writes it; what msgspec still refuses (a lone surrogate
    # in a name) goes to `json` with the score as it is, for `json`'s own error
    score = fastjson.exact_float(scored["score"])
    if type(score) is float:  # written alike by both: no copy needed
        return fastjson.to_json_bytes(doc, proven)
    exact = {**doc, "model": {"version": scored["version"], "score": score}}
    fast = fastjson.dumps(exact, proven)
    return fast if fast is not None else fastjson.to_json_bytes(doc, False)


def _score_as_built(scored: Any) -> bool:
    """`{"version": text, "score": a finite float}`, as `_judge` builds it from a `ModelScore`."""
    if type(scored) is not dict or len(scored) != 2 or type(scored.get("version")) is not str:
        return False
    score = scored.get("score")
    return type(score) is float and math.isfinite(score)


def _plain_as_built(added: dict[str, Any], record: SourceRecord) -> bool:
    """True when `fastjson.plain(added)` is (a score aside: `_score_as_built`), known from how `_judge`
    built `added` (False: not known, ask it): the category, the flag and a routed position (text and ints,
    from `origin_position`) are plain by construction, the rest is checked here as it checks it, without
    its walk of every field and nested dict: that walk was most of the judge's JSON checking (issue 29)."""
    now = added["processed_time"]
    # a field added to `enrichment` or `_judge` later is not known: then `len` differs and `plain` is asked
    return (len(added) == 9 + ("judged_at" in added) + ("model" in added) and not added["alert_reasons"]
            and type(now) is dt.datetime and now.tzinfo is dt.UTC and now.year >= 1000
            and type(added["risk_score"]) is int and type(added["rules_version"]) is str
            and type(added["late"]) is bool and type(added["content_hash"]) is str
            and type(record.topic) is str and type(record.partition) is int and type(record.offset) is int)
