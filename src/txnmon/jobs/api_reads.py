"""What the HTTP API's read side reads from MongoDB: the processor's stored verdicts by transaction id
(for `/v1/decisions`), one alert, one case. Only indexed lookups on the hot path: the transactions by id,
their alerts by the ids the processor gives them (`<transaction_id>:<rule>`) and by `transaction_id` (the
alerts later transactions completed), so a poll for many waiting requests is at most five indexed reads
whatever the collections' size.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from txnmon.adapters.mongo import MongoStore
from txnmon.api.decisions import Stored, expected_alert_ids, is_complete
from txnmon.core import cases as core_cases
from txnmon.core.collection_names import ALERTS, CASES, REJECTED, SUPPRESSED_ALERTS, TRANSACTIONS
from txnmon.jobs import cases as case_jobs

VERDICT_PROJECTION = {"alert_reasons": 1, "risk_score": 1, "rules_version": 1, "content_hash": 1,
                      "processed_time": 1, "source": 1}
ALERTS_STAGE = "alerts"  # the stage of a DLQ record whose alert MongoDB refused (src/txnmon/pipeline/sinks.py)


def stored_verdicts(store: MongoStore, transaction_ids: Sequence[str], *, about: bool = False) -> dict[str, Stored]:
    """Per stored transaction among `transaction_ids`: its document and the alerts about it (raised and
    suppressed; shadow alerts never decide). `about`: also the alerts a later transaction completed
    (`completed_by`), found by `transaction_id` (indexed on MongoDB). Both the poller of `POST /v1/decisions`
    and `GET /v1/decisions/{id}` pass True: with False a repeated POST could approve what GET declines."""
    ids = list(dict.fromkeys(transaction_ids))
    if not ids:
        return {}
    txs = store.find(TRANSACTIONS, {"_id": {"$in": ids}}, projection=VERDICT_PROJECTION)
    if not txs:
        return {}
    expected = [alert_id for tx in txs for alert_id in expected_alert_ids(tx)]
    found: dict[str, dict[str, Any]] = {}
    for collection in (ALERTS, SUPPRESSED_ALERTS):
        if expected:
            found.update({d["_id"]: d for d in store.find(collection, {"_id": {"$in": expected}})})
        if about:
            found.update({d["_id"]: d for d in store.find(collection, {"transaction_id": {"$in": ids}})})
    by_tx: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for alert in found.values():
        by_tx[str(alert.get("transaction_id"))].append(alert)
    txs = _with_refused_alerts(store, txs, by_tx)
    return {str(tx["_id"]): (tx, by_tx.get(str(tx["_id"]), [])) for tx in txs}


def _with_refused_alerts(store: MongoStore, txs: list[dict[str, Any]],
                         by_tx: Mapping[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Incomplete transactions whose alert MongoDB refused for good: the processor kept the transaction and
    sent its record to the DLQ (`rejected`, `_id` its source position, stage `alerts`), so the missing alert
    never comes. Such a transaction gets `alerts_refused` (the DLQ record's reason) and its verdict is
    definite (src/txnmon/api/decisions.py), not pending forever. One `_id` read, only for incomplete ones."""
    incomplete = {_position(tx): tx for tx in txs
                  if tx.get("source") and not is_complete(tx, by_tx.get(str(tx["_id"]), []))}
    if not incomplete:
        return txs
    refused = {d["_id"]: d for d in store.find(REJECTED, {"_id": {"$in": list(incomplete)}, "stage": ALERTS_STAGE},
                                              projection={"reason": 1, "detail": 1})}
    return [{**tx, "alerts_refused": {"reason": refused[_position(tx)].get("reason"),
                                      "dlq_id": _position(tx)}}
            if tx.get("source") and _position(tx) in refused else tx for tx in txs]


def _position(tx: Mapping[str, Any]) -> str:
    source = tx.get("source") or {}
    return f"{source.get('topic')}:{source.get('partition')}:{source.get('offset')}"


def find_alert(store: MongoStore, alert_id: str) -> dict[str, Any] | None:
    """An alert (raised, suppressed or shadow) with the transactions it counted, its disposition and its
    case (id, status, outcome), or None. Not for the HTTP answer as is: src/txnmon/api/views.py shapes it."""
    try:
        shown = case_jobs.show_alert(store, alert_id)
    except core_cases.CaseError:
        return None
    case = shown.get("case")
    return {"alert": shown["alert"], "collection": shown["collection"],
            "counted_transactions": shown["counted_transactions"], "disposition": shown["disposition"],
            "case": None if case is None else {"case_id": case["_id"], "status": case.get("status"),
                                               "resolution": case.get("resolution"), "severity": case.get("severity")}}


def find_case(store: MongoStore, case_id: str) -> dict[str, Any] | None:
    """A case with its alerts, or None (not its audit trail: `txnmon cases show` is the desk's view; the HTTP
    answer is shaped by src/txnmon/api/views.py)."""
    case = store.find_one(CASES, {"_id": case_id})
    if case is None:
        return None
    alerts = store.find(ALERTS, {"_id": {"$in": list(case.get("alert_ids", []))}}, sort=[("event_time", 1)])
    return {"case": case, "alerts": alerts}
