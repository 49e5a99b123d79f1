"""Run rules over history exactly as the processor would, and measure them.

`txnmon backtest` and the `backtest_rules` DAG call `run_backtest`; the processor's own
`Detector` does the work, so offline and live results cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from include.errors import InvalidInputFile
from include.generator import PATTERN_RULES
from include.rules import Detector, RuleSet
from include.schema import InvalidTransaction, normalise

LABEL = "fraud_label"
INCIDENT = "fraud_incident"


@dataclass
class BacktestResult:
    rules_version: str
    transactions: int
    rejected: int
    alerts: set[str] = field(default_factory=set)  # alert ids, as the processor would store them
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    shadow_by_rule: Counter[str] = field(default_factory=Counter)
    alerted_transactions: set[str] = field(default_factory=set)
    labelled: bool = False
    recall_by_pattern: dict[str, dict[str, float]] = field(default_factory=dict)
    precision: float | None = None
    false_alert_rate: float | None = None
    clean_transactions: int = 0
    false_alerts: int = 0
    examples: dict[str, str] = field(default_factory=dict)  # alert id -> reason


def load_transactions(path: Path, zone: ZoneInfo, now: dt.datetime | None = None) -> tuple[list[dict[str, Any]], int]:
    """Rows of a CSV file as normalised transactions in event-time order, and the count of invalid rows."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidInputFile(f"{path}: cannot read as CSV: {exc}") from None
    return normalise_rows(frame.to_dict("records"), zone, now)


def normalise_rows(
    rows: Iterable[Mapping[str, Any]], zone: ZoneInfo, now: dt.datetime | None = None
) -> tuple[list[dict[str, Any]], int]:
    now = now or dt.datetime.now(dt.UTC)
    out, rejected = [], 0
    for row in rows:
        clean = {k: v for k, v in row.items() if v != "" and v is not None}
        if LABEL in row:  # keep "" labels: they mark the clean rows of a labelled file
            clean[LABEL] = row[LABEL] or ""
            clean[INCIDENT] = row.get(INCIDENT) or ""
        try:
            out.append(normalise(clean, zone=zone, now=now))
        except InvalidTransaction:
            rejected += 1
    out.sort(key=lambda t: (t["event_time"], t["transaction_id"]))
    return out, rejected


def run_backtest(transactions: list[dict[str, Any]], ruleset: RuleSet, rejected: int = 0) -> BacktestResult:
    """Every transaction through a fresh Detector in event-time order; measures if labelled."""
    detector = Detector(ruleset)
    result = BacktestResult(ruleset.version, len(transactions), rejected)
    hits_by_tx: dict[str, set[str]] = defaultdict(set)
    for tx in transactions:
        for hit in detector.observe(tx):
            alert_id = f"{tx['transaction_id']}:{hit.rule}"
            if hit.mode == "shadow":
                result.shadow_by_rule[hit.rule] += 1
                continue
            result.alerts.add(alert_id)
            result.alerts_by_rule[hit.rule] += 1
            result.alerted_transactions.add(tx["transaction_id"])
            hits_by_tx[tx["transaction_id"]].add(hit.rule)
            result.examples[alert_id] = hit.reason
    if transactions and LABEL in transactions[0]:
        _measure(result, transactions, hits_by_tx)
    return result


def _measure(result: BacktestResult, transactions: list[dict[str, Any]], hits: Mapping[str, set[str]]) -> None:
    result.labelled = True
    incidents: dict[str, tuple[str, list[str]]] = {}
    clean = fraud_alerted = 0
    for tx in transactions:
        label = tx.get(LABEL) or ""
        if label:
            incidents.setdefault(tx.get(INCIDENT) or tx["transaction_id"], (label, []))[1].append(tx["transaction_id"])
            if tx["transaction_id"] in hits:
                fraud_alerted += 1
        elif not tx.get(INCIDENT):
            clean += 1
            if tx["transaction_id"] in hits:
                result.false_alerts += 1
    per_pattern: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for label, tx_ids in incidents.values():
        expected = set(PATTERN_RULES.get(label, ()))
        caught = any(hits.get(t, set()) & expected if expected else hits.get(t) for t in tx_ids)
        per_pattern[label][0] += 1
        per_pattern[label][1] += int(bool(caught))
    result.recall_by_pattern = {
        label: {"incidents": n, "caught": c, "recall": c / n if n else 0.0}
        for label, (n, c) in sorted(per_pattern.items())
    }
    alerted = len(result.alerted_transactions)
    result.precision = fraud_alerted / alerted if alerted else None
    result.clean_transactions = clean
    result.false_alert_rate = result.false_alerts / clean if clean else None
