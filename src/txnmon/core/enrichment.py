"""Enrichment of a valid transaction: value category, UTC times, alert flag, reasons, risk score."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from txnmon.core.rules import Hit, risk_score

LOW, MEDIUM, HIGH = "Low", "Medium", "High"


def value_category(amount: float, medium_threshold: float, high_threshold: float) -> str:
    """Low below `medium_threshold`, Medium below `high_threshold`, High from there up."""
    if amount >= high_threshold:
        return HIGH
    if amount >= medium_threshold:
        return MEDIUM
    return LOW


def enrich(
    tx: Mapping[str, Any],
    hits: Sequence[Hit],
    *,
    processed_time: dt.datetime,
    medium_threshold: float,
    high_threshold: float,
) -> dict[str, Any]:
    """The stored / forwarded transaction: the input plus the enrichment fields.

    Shadow-mode hits are left out: they must not change what users and dashboards see.
    """
    return {**tx, **enrichment(tx, hits, processed_time=processed_time, medium_threshold=medium_threshold,
                               high_threshold=high_threshold)}


def enrichment(
    tx: Mapping[str, Any],
    hits: Sequence[Hit],
    *,
    processed_time: dt.datetime,
    medium_threshold: float,
    high_threshold: float,
) -> dict[str, Any]:
    """The enrichment fields alone, in their stored order (`enrich` adds them to the input): the
    processor adds its own before it builds the document, so the input is copied once."""
    live = [h for h in hits if h.mode == "live"]
    return {
        "value_category": value_category(tx["amount"], medium_threshold, high_threshold),
        "processed_time": processed_time,
        "alert_flag": bool(live),
        "alert_reasons": [h.rule for h in live],
        "risk_score": risk_score(live),
    }
