"""Run rules over history exactly as the processor would, and measure them.

`txnmon backtest` and the `backtest_rules` DAG call `run_backtest`; the processor's own
`Detector` does the work, so offline and live results cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from txnmon.core.contract import MAX_QUANTITY, InvalidTransaction, normalise, parse_amount
from txnmon.core.rules import Detector, RuleSet
from txnmon.core.rules.conditions import Hit
from txnmon.core.scoring import Scorer, scores_of

LABEL = "fraud_label"
INCIDENT = "fraud_incident"
# what the rules read of a stored transaction (rules.state.Event, the list checks' fields, the arrival
# order): a backtest over stored history projects exactly these, so it judges what the processor judged
STORED_FIELDS = ("transaction_id", "user_id", "amount", "location", "event_time", "type", "status",
                 "payment_method", "product", "category", "country", "judged_at")
# with a model, the transactions are scored this many at a time, by the processor's own batch scoring: a
# score does not depend on the batch it was computed in (src/txnmon/core/scoring.py)
SCORE_CHUNK = 2_000
BEHAVIOUR = "behaviour"  # the clean behaviour a generated row shows (src/txnmon/synthetic/behaviours.py)
# the typology (or single-condition rule) expected to catch each fraud pattern of generated data
# (src/txnmon/synthetic/spec.py PATTERNS): what recall is measured against (the rule of rules-file
# version 1 second, so both generations can be backtested)
PATTERN_RULES = {
    "burst": ("velocity",),
    "impossible_travel": ("impossible_travel",),
    "account_takeover": ("account_takeover", "high_value_unusual_location"),
    "unusual_location": ("high_value_new_country", "high_value_unusual_location"),
    "high_amount": ("high_amount",),
    "refund_abuse": ("refund_abuse", "excessive_refunds"),
    "card_testing": ("card_testing", "repeated_failed_payments"),
}
SEVERITIES = ("low", "medium", "high")
_RANK = {s: i for i, s in enumerate(SEVERITIES)}


@dataclass
class BacktestResult:
    rules_version: str
    transactions: int
    rejected: int
    alerts: set[str] = field(default_factory=set)  # alert ids, as the processor would store them
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    shadow_by_rule: Counter[str] = field(default_factory=Counter)
    suppressed_by_rule: Counter[str] = field(default_factory=Counter)
    shadow_alerts: set[str] = field(default_factory=set)
    alerted_transactions: set[str] = field(default_factory=set)
    labelled: bool = False
    recall_by_pattern: dict[str, dict[str, float]] = field(default_factory=dict)
    precision: float | None = None
    false_alert_rate: float | None = None
    clean_transactions: int = 0
    false_alerts: int = 0
    # clean transactions with a false alert, by the highest severity among its live hits
    false_by_severity: dict[str, int] = field(default_factory=dict)
    # clean behaviour -> {"transactions", "false_alerts", "rate", "by_severity"}
    false_by_behaviour: dict[str, dict[str, Any]] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)  # alert id -> reason
    model_version: str | None = None
    scores: dict[str, float] = field(default_factory=dict)  # transaction id -> the model's score (with a model)


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
            out.append(normalise(read_numbers(clean), zone=zone, now=now))
        except InvalidTransaction:
            rejected += 1
    # file order is arrival order: a replay of the file delivers each user's rows in this order,
    # and verdicts follow arrival order (src/txnmon/core/rules/state.py)
    return out, rejected


def read_numbers(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row (every cell text) with its amount and quantity read as the contract reads them, in place;
    a cell that does not read as one is left as it is, for the contract to reject with its reason.

    `normalise` then gives the same transaction, or the same rejection, as from the text: its one-pass
    check takes numbers only, and text amounts sent every row of a backtest through the full checks
    (24 of 64 s of a profiled backtest of 200,000 rows; issue 29)."""
    amount = row.get("amount")
    if type(amount) is str:
        try:
            row["amount"] = parse_amount(amount)
        except InvalidTransaction:
            pass
    quantity = row.get("quantity")
    if type(quantity) is str:
        try:
            qty = float(quantity)  # as the contract reads a quantity
        except ValueError:
            return row
        if math.isfinite(qty) and 0 <= qty <= MAX_QUANTITY:
            row["quantity"] = qty
    return row


def run_backtest(transactions: list[dict[str, Any]], ruleset: RuleSet, rejected: int = 0,
                 progress: Callable[[int, int], None] | None = None, model: Scorer | None = None) -> BacktestResult:
    """Every transaction through a fresh Detector in the given (arrival) order; measures if labelled.
    With a `model` (a loaded risk model), each is scored as the processor scores it, for the rules'
    `model_score` signal; `scores` then holds every score.

    `progress(done, total)` is called every 10,000 transactions and at the end (the CLI shows it).
    src/txnmon/jobs/backtest_workers.py runs the same on several processes, a share of the users each."""
    return measured(judge(transactions, ruleset, progress, model), transactions, rejected)


@dataclass
class Judged:
    """What judging a run of transactions found, before measuring it: the alerts and counts of a
    `BacktestResult`, and per transaction the rules of its live hits and their highest severity."""

    result: BacktestResult
    hits_by_tx: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    severity_of: dict[str, str] = field(default_factory=dict)
    rule_of: dict[str, str] = field(default_factory=dict)  # raised alert id -> its rule


def judge(transactions: list[dict[str, Any]], ruleset: RuleSet,
          progress: Callable[[int, int], None] | None = None, model: Scorer | None = None) -> Judged:
    """`run_backtest`'s judging, not measured yet (`measured`)."""
    detector = Detector(ruleset)
    judged = Judged(BacktestResult(ruleset.version, len(transactions), 0,
                                   model_version=model.version if model is not None else None))
    result = judged.result
    total = len(transactions)
    scores: dict[str, Any] = {}
    modelled = False  # the model scored the current chunk (one that failed is judged as without a model)
    for i, tx in enumerate(transactions):
        if progress is not None and i % 10_000 == 0:
            progress(i, total)
        if model is not None and i % SCORE_CHUNK == 0:
            # a chunk of re-sends only has nothing to score, and is still judged with the model in use: the
            # verdicts do not depend on where the chunks fall (nor on how a parallel backtest shares the users)
            chunk = scores_of(detector, transactions[i:i + SCORE_CHUNK], model)
            modelled, scores = chunk is not None, chunk or {}
            result.scores.update((tid, found.score) for tid, found in scores.items())
        # a repeated id has no score of its own (scored once) but is judged with the model in use all the same
        judgement = detector.judge(tx, scores.pop(str(tx["transaction_id"]), None), modelled)
        detector.record(judgement)
        # a late arrival's completed alerts are about the later transactions, as in the processor
        about = [(tx["transaction_id"], judgement.hits),
                 *((later.transaction_id, [hit]) for later, hit in judgement.completed)]
        for transaction_id, hits in about:
            for hit in hits:
                _count(judged, transaction_id, hit)
    if progress is not None:
        progress(total, total)
    return judged


def measured(judged: Judged, transactions: list[dict[str, Any]], rejected: int = 0) -> BacktestResult:
    """The result of `judged` over all of `transactions`, measured against their labels if labelled."""
    result = judged.result
    result.transactions, result.rejected = len(transactions), rejected
    if transactions and LABEL in transactions[0]:
        _measure(result, transactions, judged.hits_by_tx, judged.severity_of)
    return result


def outranks(severity: str, known: str | None) -> bool:
    """Whether `severity` is higher than `known` (None: none known yet): a transaction's highest counts."""
    return known is None or _RANK.get(severity, 0) > _RANK.get(known, 0)


def _count(judged: Judged, transaction_id: str, hit: Hit) -> None:
    result = judged.result
    alert_id = f"{transaction_id}:{hit.rule}"
    if hit.mode == "shadow":
        result.shadow_by_rule[hit.rule] += 1
        result.shadow_alerts.add(alert_id)
        return
    judged.hits_by_tx[transaction_id].add(hit.rule)  # a suppressed repeat still detects
    if outranks(hit.severity, judged.severity_of.get(transaction_id)):
        judged.severity_of[transaction_id] = hit.severity
    if hit.suppressed_by:
        result.suppressed_by_rule[hit.rule] += 1
        return
    if alert_id in result.alerts:
        # completed again by a late arrival: its re-weighing lacks the later transaction's model score, so a
        # typology that score helped raise looks new (stored once in the stream: the same alert id)
        return
    result.alerts.add(alert_id)
    result.alerts_by_rule[hit.rule] += 1
    result.alerted_transactions.add(transaction_id)
    result.examples[alert_id] = hit.reason
    judged.rule_of[alert_id] = hit.rule


def _measure(result: BacktestResult, transactions: list[dict[str, Any]], hits: Mapping[str, set[str]],
             severity_of: Mapping[str, str]) -> None:
    result.labelled = True
    incidents: dict[str, tuple[str, list[str]]] = {}
    clean = fraud_alerted = 0
    by_severity: Counter[str] = Counter()
    behaviours: dict[str, list[Any]] = defaultdict(lambda: [0, 0, Counter()])
    for tx in transactions:
        label = tx.get(LABEL) or ""
        if label:
            incidents.setdefault(tx.get(INCIDENT) or tx["transaction_id"], (label, []))[1].append(tx["transaction_id"])
            if tx["transaction_id"] in hits:
                fraud_alerted += 1
        elif not tx.get(INCIDENT):
            clean += 1
            row = behaviours[str(tx.get(BEHAVIOUR) or "unlabelled")]
            row[0] += 1
            if tx["transaction_id"] in hits:
                result.false_alerts += 1
                severity = severity_of[tx["transaction_id"]]
                by_severity[severity] += 1
                row[1] += 1
                row[2][severity] += 1
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
    alerted = len(hits)  # transactions with a live hit, raised or suppressed
    result.precision = fraud_alerted / alerted if alerted else None
    result.clean_transactions = clean
    result.false_alert_rate = result.false_alerts / clean if clean else None
    result.false_by_severity = {s: by_severity.get(s, 0) for s in SEVERITIES}
    if set(behaviours) != {"unlabelled"}:  # a file that labels behaviours (txnmon generate)
        result.false_by_behaviour = {
            name: {"transactions": n, "false_alerts": f, "rate": f / n if n else 0.0,
                   "by_severity": {s: sev.get(s, 0) for s in SEVERITIES}}
            for name, (n, f, sev) in sorted(behaviours.items())}


@dataclass
class Comparison:
    added: list[str]
    dropped: list[str]


def compare(candidate: BacktestResult, baseline: BacktestResult) -> Comparison:
    return Comparison(sorted(candidate.alerts - baseline.alerts), sorted(baseline.alerts - candidate.alerts))


def to_json(result: BacktestResult, comparison: Comparison | None = None, baseline: BacktestResult | None = None,
            examples: int = 5) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "rules_version": result.rules_version,
        "transactions": result.transactions,
        "rejected_rows": result.rejected,
        "alerts": len(result.alerts),
        "alerts_by_rule": dict(sorted(result.alerts_by_rule.items())),
        "shadow_hits_by_rule": dict(sorted(result.shadow_by_rule.items())),
        "suppressed_by_rule": dict(sorted(result.suppressed_by_rule.items())),
        "alerted_transactions": len(result.alerted_transactions),
    }
    if result.model_version is not None:
        doc["model"] = {"version": result.model_version, "scored": len(result.scores)}
    if result.labelled:
        doc["quality"] = {
            "recall_by_pattern": result.recall_by_pattern,
            "precision": result.precision,
            "false_alert_rate": result.false_alert_rate,
            "false_alerts": result.false_alerts,
            "clean_transactions": result.clean_transactions,
            "false_alerts_by_severity": result.false_by_severity,
            "false_alert_rate_by_severity": {
                s: n / result.clean_transactions if result.clean_transactions else None
                for s, n in result.false_by_severity.items()},
            "false_alerts_by_behaviour": result.false_by_behaviour,
        }
    if comparison is not None and baseline is not None:
        doc["baseline"] = {"rules_version": baseline.rules_version, "alerts": len(baseline.alerts),
                           "alerts_by_rule": dict(sorted(baseline.alerts_by_rule.items()))}
        doc["added"] = {"count": len(comparison.added),
                        "examples": [{"alert_id": a, "reason": result.examples[a]}
                                     for a in comparison.added[:examples]]}
        doc["dropped"] = {"count": len(comparison.dropped),
                          "examples": [{"alert_id": a, "reason": baseline.examples[a]}
                                       for a in comparison.dropped[:examples]]}
    return doc


def render(doc: dict[str, Any]) -> str:
    """The JSON report as a readable terminal table."""
    lines = [f"rules {doc['rules_version']}: {doc['transactions']:,} transactions"
             + (f" ({doc['rejected_rows']:,} invalid rows skipped)" if doc["rejected_rows"] else ""),
             f"{doc['alerts']:,} alerts on {doc['alerted_transactions']:,} transactions", "",
             f"  {'rule':<30}{'alerts':>10}" + (f"{'baseline':>10}{'change':>10}" if "baseline" in doc else "")]
    rules = sorted(set(doc["alerts_by_rule"]) | set(doc.get("baseline", {}).get("alerts_by_rule", {})))
    for rule in rules:
        n = doc["alerts_by_rule"].get(rule, 0)
        line = f"  {rule:<30}{n:>10,}"
        if "baseline" in doc:
            b = doc["baseline"]["alerts_by_rule"].get(rule, 0)
            line += f"{b:>10,}{n - b:>+10,}"
        lines.append(line)
    if doc["suppressed_by_rule"]:
        lines += ["", "  suppressed repeats (suppress_for):"]
        lines += [f"  {rule:<30}{n:>10,}" for rule, n in doc["suppressed_by_rule"].items()]
    if doc["shadow_hits_by_rule"]:
        lines += ["", "  shadow rules (not raised):"]
        lines += [f"  {rule:<30}{n:>10,}" for rule, n in doc["shadow_hits_by_rule"].items()]
    if "quality" in doc:
        q = doc["quality"]
        lines += ["", f"  {'injected pattern':<30}{'incidents':>10}{'caught':>10}{'recall':>10}"]
        for label, r in q["recall_by_pattern"].items():
            lines.append(f"  {label:<30}{r['incidents']:>10,}{r['caught']:>10,}{r['recall']:>10.1%}")
        precision = "n/a" if q["precision"] is None else f"{q['precision']:.1%}"
        rate = "n/a" if q["false_alert_rate"] is None else f"{q['false_alert_rate']:.2%}"
        lines += ["", f"  precision (alerted transactions that are fraud): {precision}",
                  f"  false alerts on clean transactions: {q['false_alerts']:,} of {q['clean_transactions']:,} "
                  f"({rate})"]
        clean_n = q["clean_transactions"]
        by_sev = q.get("false_alerts_by_severity") or {}
        if clean_n and by_sev:
            lines.append("  by highest severity: " + ", ".join(
                f"{s} {n:,} ({n / clean_n:.2%})" for s, n in by_sev.items()))
        if q.get("false_alerts_by_behaviour"):
            lines += ["", f"  {'clean behaviour':<30}{'transactions':>13}{'false alerts':>13}{'rate':>9}"
                          f"{'low':>6}{'medium':>8}{'high':>6}"]
            for name, b in q["false_alerts_by_behaviour"].items():
                sev = b["by_severity"]
                lines.append(f"  {name:<30}{b['transactions']:>13,}{b['false_alerts']:>13,}{b['rate']:>9.2%}"
                             f"{sev['low']:>6,}{sev['medium']:>8,}{sev['high']:>6,}")
    if "baseline" in doc:
        lines += ["", f"  vs baseline {doc['baseline']['rules_version']}: +{doc['added']['count']:,} alerts added, "
                      f"-{doc['dropped']['count']:,} dropped"]
        for kind, word in (("added", "new"), ("dropped", "gone")):
            for ex in doc[kind]["examples"]:
                lines.append(f"    {word:<5} {ex['alert_id']}: {ex['reason']}")
    return "\n".join(lines)
