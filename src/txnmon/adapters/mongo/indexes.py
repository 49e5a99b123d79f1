"""The schema txnmon relies on: every index, and the collections `$merge` writes into.

The processor, the rollups, the desk, the outbox and the dashboard each query by a few fields; the
indexes that make those queries cheap are listed here in one place, whichever module runs the
query, so `MongoStore.ensure_indexes` (called by `txnmon init` and the tests) creates them all and
creating them twice is a no-op.
"""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING
from pymongo import errors as mongo_errors
from pymongo.database import Database

from txnmon.adapters.mongo.client import NAMESPACE_EXISTS
from txnmon.core.collection_names import (
    ABANDONED_CARTS,
    ABANDONMENT_HOUR,
    ALERTS,
    API_KEYS,
    AUDIT_LOG,
    CART_EVENTS,
    CART_OUTCOMES,
    CASES,
    CUSTOMERS_HOUR,
    INTERVENTIONS,
    KPI_RUNS,
    KPI_STOCK_HOUR,
    LIST_ENTRIES,
    NOTIFICATIONS,
    OPS_ALERTS,
    REJECTED,
    REVIEW_SCORES,
    REVIEWS,
    RULE_QUALITY,
    SENTIMENT_HOUR,
    SHADOW_ALERTS,
    STOCK_EVENTS,
    SUPPRESSED_ALERTS,
    TOUCHED_HOURS,
    TRANSACTIONS,
    TRENDS,
)
from txnmon.core.rollups import GRAIN_FIELD, ROLLUP_NAMES, ROLLUPS


def ensure_indexes(db: Database) -> None:
    """Indexes the processor, rollups and dashboard rely on; creating them twice is a no-op.

    Transactions and alerts use their natural ids as `_id`, so uniqueness needs no extra index.
    Untranslated: the caller (`MongoStore.ensure_indexes`) translates pymongo's errors.
    """
    tx = db[TRANSACTIONS]
    tx.create_index([("user_id", ASCENDING), ("event_time", DESCENDING)], name="user_recent")
    tx.create_index([("event_time", ASCENDING)], name="event_time")
    tx.create_index([("processed_time", ASCENDING)], name="processed_time")
    # the rule-quality view's labelled-data tables (replayed `txnmon generate` files carry these
    # fields; sparse: unlabelled production traffic pays nothing)
    tx.create_index([("behaviour", ASCENDING)], name="labelled_behaviour", sparse=True)
    tx.create_index([("fraud_incident", ASCENDING)], name="labelled_incident", sparse=True)
    alerts = db[ALERTS]
    alerts.create_index([("created_at", DESCENDING)], name="created_at")
    alerts.create_index([("rule", ASCENDING), ("event_time", ASCENDING)], name="rule_event_time")
    alerts.create_index([("user_id", ASCENDING), ("event_time", DESCENDING)], name="user_recent")
    alerts.create_index([("event_time", ASCENDING)], name="event_time")  # rollups read touched hours
    alerts.create_index([("transaction_id", ASCENDING)], name="transaction_id")  # GET /v1/decisions/{id}
    db[REJECTED].create_index([("reason", ASCENDING), ("first_seen", ASCENDING)], name="reason_first_seen")
    db[TOUCHED_HOURS].create_index([("pending", ASCENDING)], name="pending")
    db[KPI_RUNS].create_index([("success", ASCENDING), ("finished_at", DESCENDING)], name="success_finished")
    for rollup in ROLLUPS:  # the dashboard and the rollup job read kpi_* by bucket range
        grain = GRAIN_FIELD[rollup.grain]
        db[rollup.collection].create_index([(grain, ASCENDING)], name=grain)
    db[CUSTOMERS_HOUR].create_index([("hour", ASCENDING)], name="hour")
    db[OPS_ALERTS].create_index([("status", ASCENDING), ("opened_at", DESCENDING)], name="status_opened")
    # each dashboard page lists its own kinds of ops alert, newest first ({kind: {$in}} sorted by opened_at)
    db[OPS_ALERTS].create_index([("kind", ASCENDING), ("opened_at", DESCENDING)], name="kind_opened")
    # each dashboard section lists its own kinds (payment, stock, sentiment), open ones or all, newest first
    db[OPS_ALERTS].create_index([("kind", ASCENDING), ("status", ASCENDING), ("opened_at", DESCENDING)],
                                name="kind_status_opened")
    db[TRENDS].create_index([("status", ASCENDING), ("opened_at", DESCENDING)], name="status_opened")
    # the stock walk reads stock events by event-time range; BI reads its hourly KPIs by hour
    db[STOCK_EVENTS].create_index([("event_time", ASCENDING)], name="event_time")
    db[KPI_STOCK_HOUR].create_index([("hour", ASCENDING)], name="hour")
    # the sentiment walk reads scores by event-time range; BI reads kpi_sentiment_hour by hour or product
    db[REVIEW_SCORES].create_index([("event_time", ASCENDING)], name="event_time")
    db[REVIEWS].create_index([("event_time", ASCENDING)], name="event_time")  # ... and the reviews to score
    db[SENTIMENT_HOUR].create_index([("hour", ASCENDING)], name="hour")
    db[SENTIMENT_HOUR].create_index([("product_id", ASCENDING), ("hour", ASCENDING)], name="product_hour")
    for name in (SUPPRESSED_ALERTS, SHADOW_ALERTS):
        db[name].create_index([("rule", ASCENDING), ("event_time", ASCENDING)], name="rule_event_time")
    db[SUPPRESSED_ALERTS].create_index([("transaction_id", ASCENDING)], name="transaction_id")
    cases = db[CASES]  # the case sink looks a batch's users up; the inbox lists by status
    cases.create_index([("user_id", ASCENDING), ("window_end", DESCENDING)], name="user_window")
    cases.create_index([("status", ASCENDING), ("severity_rank", DESCENDING), ("opened_at", ASCENDING)],
                       name="status_severity_opened")
    cases.create_index([("alert_ids", ASCENDING)], name="alert_ids")
    # every close first finishes closes a failure left half-done: only those cases carry the field
    cases.create_index([("pending_close", ASCENDING)], name="pending_close", sparse=True)
    db[LIST_ENTRIES].create_index([("list", ASCENDING), ("key", ASCENDING)], name="list_key")
    db[AUDIT_LOG].create_index([("target", ASCENDING), ("at", DESCENDING)], name="target_at")
    db[AUDIT_LOG].create_index([("at", DESCENDING)], name="at")
    db[API_KEYS].create_index([("key_id", ASCENDING)], name="key_id")  # every API request looks its key up
    # the notify workers claim due entries by status and time; status counts feed `txnmon status`
    db[NOTIFICATIONS].create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="status_due")
    # cart abandonment (jobs/abandonment.py): a run's carts by their recent events, then all their events;
    # due recoveries; a user's recent abandonments; the hours it recomputes
    db[CART_EVENTS].create_index([("event_time", ASCENDING)], name="event_time")
    db[CART_EVENTS].create_index([("cart_id", ASCENDING)], name="cart_id", sparse=True)
    db[CART_EVENTS].create_index([("session_id", ASCENDING)], name="session_id", sparse=True)
    db[ABANDONED_CARTS].create_index([("recovery_due", ASCENDING)], name="recovery_due")
    db[ABANDONED_CARTS].create_index([("user_id", ASCENDING), ("deadline", ASCENDING)], name="user_deadline")
    db[CART_OUTCOMES].create_index([("hour", ASCENDING)], name="hour")
    db[ABANDONMENT_HOUR].create_index([("hour", ASCENDING)], name="hour")
    db[INTERVENTIONS].create_index([("user_id", ASCENDING), ("at", DESCENDING)], name="user_at")
    db[INTERVENTIONS].create_index([("at", DESCENDING)], name="at")  # the Operations page: newest first
    # $merge targets exist before the first merge: two first merges racing to create one fail
    existing = set(db.list_collection_names())
    for name in (*ROLLUP_NAMES, RULE_QUALITY):
        if name not in existing:
            try:
                db.create_collection(name)
            except mongo_errors.CollectionInvalid:
                pass  # created meanwhile by another process: what we wanted
            except mongo_errors.OperationFailure as exc:
                if exc.code != NAMESPACE_EXISTS:
                    raise
