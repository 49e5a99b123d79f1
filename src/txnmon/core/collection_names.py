"""Names of the MongoDB collections txnmon writes: the storage layout the jobs, rollups and BI share."""

from __future__ import annotations

TRANSACTIONS = "transactions"
ALERTS = "alerts"
SUPPRESSED_ALERTS = "suppressed_alerts"  # repeats folded into an earlier alert (suppress_for)
SHADOW_ALERTS = "shadow_alerts"  # hits of rules in mode: shadow, never raised
REJECTED = "rejected"  # every DLQ record, queryable and re-drivable (`txnmon dlq`)
WATERMARKS = "watermarks"  # per input partition: the newest event times seen (late-event flag)
TOUCHED_HOURS = "touched_hours"  # per stored batch: the event-time hours the rollups must recompute
QUALITY_REPORTS = "quality_reports"
ALERT_DISPOSITIONS = "alert_dispositions"  # analysts' triage marks, with their history
RULE_QUALITY = "kpi_rule_quality"
KPI_RUNS = "kpi_runs"  # one document per rollup run: what it recomputed, consumed and wrote; freshness for BI
LEASES = "leases"  # one document per exclusive job (e.g. the KPI rollups): who holds it, until when
CASES = "cases"  # a user's alerts grouped for an analyst (src/txnmon/core/cases.py)
LIST_ENTRIES = "list_entries"  # named lists: blocked users, risky locations, trusted (user, rule) pairs
LIST_CHANGES = "list_changes"  # one counter, moved by every list change: the processor reloads the lists then
AUDIT_LOG = "audit_log"  # append-only: who changed what, when, before and after
RULE_VERSIONS = "rule_versions"  # the full text of every rules version the processor loaded
NOTIFICATIONS = "notifications"  # the outbox: one entry per (event, destination), delivered by `txnmon notify`
NOTIFY_RATES = "notify_rates"  # per destination: the rate limit's state, shared by every notify worker
OPS_ALERTS = "ops_alerts"  # operational alerts (payment-method failure spikes), kept apart from fraud `alerts`
TRENDS = "trends"  # trending products and cities, new high-demand regions (src/txnmon/core/business_signals.py)
SIGNAL_STATE = "signal_state"  # where the business-signal walk stopped, its open episodes, the cities seen
CUSTOMERS_HOUR = "kpi_customers_hour"  # new vs returning customers, repeat rate, order value, top customers
CUSTOMER_FIRSTS = "customer_firsts"  # each customer's first purchase hour, packed in shards (core/customers.py)
API_KEYS = "api_keys"  # `txnmon serve`'s API keys: a salted hash each, never the key (src/txnmon/api/keys.py)
MODEL_VERSIONS = "model_versions"  # risk models: metadata, checksum, metrics (jobs/models.py)
MODEL_PROMOTION = "model_promotion"  # one pointer document: the promoted model version (adapters/mongo/models.py)
# the other event kinds as `txnmon events` stores them (one document per event, `_id` = its id; docs/events.md)
CART_EVENTS = "cart_events"
STOCK_EVENTS = "stock_events"
REVIEWS = "reviews"
# stock depletion and restock (src/txnmon/core/stock.py, jobs/stock.py; alerts go to OPS_ALERTS)
STOCK_LEVELS = "stock_levels"  # per product and location: the level, rate and projection at the last walk's end
KPI_STOCK_HOUR = "kpi_stock_hour"  # per hour, product, location with events: opening, sold, restocked, closing
STOCK_STATE = "stock_state"  # where the stock walk stopped: each key's level, recent sales, open episodes
# review sentiment (src/txnmon/jobs/sentiment.py; drop alerts go to OPS_ALERTS, kind "sentiment_drop")
REVIEW_SCORES = "review_scores"  # one per review: its compound sentiment, scored once (`_id` = the review's id)
SENTIMENT_HOUR = "kpi_sentiment_hour"  # per event-time hour and product: reviews, mean rating and sentiment
SENTIMENT_STATE = "sentiment_state"  # where the sentiment walk stopped, and its open drop episodes
# cart abandonment (src/txnmon/jobs/abandonment.py; docs/events.md, docs/rollups.md)
ABANDONED_CARTS = "abandoned_carts"  # one per abandoned cart, `_id` = the cart's key; recovered or not
CART_OUTCOMES = "cart_outcomes"  # every decided cart, abandoned or purchased: what the hourly KPIs count
INTERVENTIONS = "interventions"  # one per trigger (repeat abandoner, abandonment after a failed payment)
ABANDONMENT_HOUR = "kpi_abandonment_hour"  # per hour, product and payment method: carts, abandoned, rate
ABANDONMENT_STATE = "abandonment_state"  # how far in event time the abandonment walk has decided
