"""The comparison bench/scale_out.py (and tests/integration/pipeline/test_scale_out.py) trust: it ignores
only when and where a document was processed, and reports every other change."""

from __future__ import annotations

import datetime as dt

from bench.scale_out import _normalised, differences

T = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_processing_time_and_by_user_position_are_ignored_and_topics_named_by_role():
    doc = {"_id": "T1", "amount": 5.0, "processed_time": T, "judged_at": {"topic": "x.by_user", "offset": 7},
           "source": {"topic": "run1.raw", "partition": 2, "offset": 40}}
    assert _normalised(doc, {"run1.raw": "raw"}) == {"_id": "T1", "amount": 5.0,
                                                     "source": {"topic": "raw", "partition": 2, "offset": 40}}


def test_a_changed_verdict_a_missing_and_an_extra_document_are_reported():
    one = {"transactions": {"T1": {"_id": "T1", "alert_flag": True}}, "alerts": {"T1:velocity": {"rule": "velocity"}}}
    two = {"transactions": {"T1": {"_id": "T1", "alert_flag": False}}, "alerts": {"T2:velocity": {"rule": "velocity"}}}
    found = differences(one, two)
    assert "transactions T1: differs in ['alert_flag']" in found
    assert "alerts: 1 missing, e.g. ['T1:velocity']" in found
    assert "alerts: 1 extra, e.g. ['T2:velocity']" in found
    assert differences(one, one) == []


def test_a_different_source_offset_is_a_difference():
    def stored(topic: str, offset: int) -> dict:
        doc = {"source": {"topic": topic, "partition": 0, "offset": offset}}
        return {"transactions": {"T1": _normalised(doc, {topic: "raw"})}}

    a, b = stored("a.raw", 1), stored("b.raw", 2)
    assert differences(a, stored("b.raw", 1)) == []
    assert differences(a, b) == ["transactions T1: differs in ['source']"]
