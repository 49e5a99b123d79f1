// Runs once, as root, when the mongo container initialises its data directory.
//
// One role per txnmon component, each allowed to read the database and to write only the
// collections that component writes; one user per component with that role (the compose services
// log in as theirs), and a read-only user for BI tools. No role may update or remove an entry of
// `audit_log`: every writer of the audit trail has `insert` there and nothing else, so the
// application cannot rewrite it (docs/scaling.md). `txnmon_admin` (the app user: `txnmon init`,
// the operator's commands) also creates the collections and indexes.
// The shipped compose file gives every component user MONGO_APP_PASSWORD; a production deployment
// gives each its own secret.
const dbName = process.env.MONGO_DB || "ecommerce_stream";
const target = db.getSiblingDB(dbName);

// BEGIN ROLES: printed by `python -m tests.unit.test_mongo_roles`, checked by tests/unit/test_mongo_roles.py
const ROLES = {
  "txnmon_processor": [{"collection": "", "actions": ["collStats", "dbStats", "find", "listCollections", "listIndexes"]}, {"collection": "alerts", "actions": ["insert", "remove", "update"]}, {"collection": "audit_log", "actions": ["insert"]}, {"collection": "cases", "actions": ["insert", "remove", "update"]}, {"collection": "notifications", "actions": ["insert", "remove", "update"]}, {"collection": "rejected", "actions": ["insert", "remove", "update"]}, {"collection": "rule_versions", "actions": ["insert", "remove", "update"]}, {"collection": "shadow_alerts", "actions": ["insert", "remove", "update"]}, {"collection": "suppressed_alerts", "actions": ["insert", "remove", "update"]}, {"collection": "touched_hours", "actions": ["insert", "remove", "update"]}, {"collection": "transactions", "actions": ["insert", "remove", "update"]}, {"collection": "watermarks", "actions": ["insert", "remove", "update"]}],
  "txnmon_events": [{"collection": "", "actions": ["collStats", "dbStats", "find", "listCollections", "listIndexes"]}, {"collection": "abandoned_carts", "actions": ["insert", "remove", "update"]}, {"collection": "abandonment_state", "actions": ["insert", "remove", "update"]}, {"collection": "cart_events", "actions": ["insert", "remove", "update"]}, {"collection": "cart_outcomes", "actions": ["insert", "remove", "update"]}, {"collection": "interventions", "actions": ["insert", "remove", "update"]}, {"collection": "kpi_abandonment_hour", "actions": ["insert", "remove", "update"]}, {"collection": "kpi_sentiment_hour", "actions": ["insert", "remove", "update"]}, {"collection": "kpi_stock_hour", "actions": ["insert", "remove", "update"]}, {"collection": "leases", "actions": ["insert", "remove", "update"]}, {"collection": "notifications", "actions": ["insert", "remove", "update"]}, {"collection": "ops_alerts", "actions": ["insert", "remove", "update"]}, {"collection": "rejected", "actions": ["insert", "remove", "update"]}, {"collection": "review_scores", "actions": ["insert", "remove", "update"]}, {"collection": "reviews", "actions": ["insert", "remove", "update"]}, {"collection": "sentiment_state", "actions": ["insert", "remove", "update"]}, {"collection": "stock_events", "actions": ["insert", "remove", "update"]}, {"collection": "stock_levels", "actions": ["insert", "remove", "update"]}, {"collection": "stock_state", "actions": ["insert", "remove", "update"]}, {"collection": "watermarks", "actions": ["insert", "remove", "update"]}],
  "txnmon_notify": [{"collection": "", "actions": ["collStats", "dbStats", "find", "listCollections", "listIndexes"]}, {"collection": "notifications", "actions": ["insert", "remove", "update"]}, {"collection": "notify_rates", "actions": ["insert", "remove", "update"]}],
  "txnmon_desk": [{"collection": "", "actions": ["collStats", "dbStats", "find", "listCollections", "listIndexes"]}, {"collection": "alert_dispositions", "actions": ["insert", "remove", "update"]}, {"collection": "audit_log", "actions": ["insert"]}, {"collection": "cases", "actions": ["insert", "remove", "update"]}, {"collection": "kpi_rule_quality", "actions": ["insert", "remove", "update"]}, {"collection": "list_changes", "actions": ["insert", "remove", "update"]}, {"collection": "list_entries", "actions": ["insert", "remove", "update"]}],
  "txnmon_airflow": [{"collection": "", "actions": ["collStats", "dbStats", "find", "listCollections", "listIndexes"]}, {"collection": "customer_firsts", "actions": ["insert", "remove", "update"]}, {"collection": "kpi_alerts_hour", "actions": ["insert", "remove", "update"]}, {"collection": "kpi_customers_hour", "actions": ["insert", "remove", "update"]}, {"collection": "kpi_location_hour", "actions": ["insert", "remove", "update"]}, {"collection": "kpi_payment_hour", "actions": ["insert", "remove", "update"]}, {"collection": "kpi_product_hour", "actions": ["insert", "remove", "update"]}, {"collection": "kpi_revenue_minute", "actions": ["insert", "remove", "update"]}, {"collection": "kpi_rule_quality", "actions": ["insert", "remove", "update"]}, {"collection": "kpi_runs", "actions": ["insert", "remove", "update"]}, {"collection": "kpi_signals_5min", "actions": ["insert", "remove", "update"]}, {"collection": "kpi_value_category_hour", "actions": ["insert", "remove", "update"]}, {"collection": "leases", "actions": ["insert", "remove", "update"]}, {"collection": "model_versions", "actions": ["insert"]}, {"collection": "notifications", "actions": ["insert", "remove", "update"]}, {"collection": "ops_alerts", "actions": ["insert", "remove", "update"]}, {"collection": "quality_reports", "actions": ["insert", "remove", "update"]}, {"collection": "signal_state", "actions": ["insert", "remove", "update"]}, {"collection": "touched_hours", "actions": ["insert", "remove", "update"]}, {"collection": "trends", "actions": ["insert", "remove", "update"]}],
  "txnmon_admin": [{"collection": "", "actions": ["collStats", "dbStats", "find", "listCollections", "listIndexes"]}, {"collection": "abandoned_carts", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "abandonment_state", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "alert_dispositions", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "alerts", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "audit_log", "actions": ["createCollection", "createIndex", "insert"]}, {"collection": "cart_events", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "cart_outcomes", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "cases", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "customer_firsts", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "interventions", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "kpi_abandonment_hour", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "kpi_alerts_hour", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "kpi_customers_hour", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "kpi_location_hour", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "kpi_payment_hour", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "kpi_product_hour", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "kpi_revenue_minute", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "kpi_rule_quality", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "kpi_runs", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "kpi_sentiment_hour", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "kpi_signals_5min", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "kpi_stock_hour", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "kpi_value_category_hour", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "leases", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "list_changes", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "list_entries", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "model_promotion", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "model_versions", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "notifications", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "notify_rates", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "ops_alerts", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "quality_reports", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "rejected", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "review_scores", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "reviews", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "rule_versions", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "sentiment_state", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "shadow_alerts", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "signal_state", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "stock_events", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "stock_levels", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "stock_state", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "suppressed_alerts", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "touched_hours", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "transactions", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "trends", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}, {"collection": "watermarks", "actions": ["createCollection", "createIndex", "insert", "remove", "update"]}]
};
// END ROLES
for (const [name, privileges] of Object.entries(ROLES)) {
  target.createRole({
    role: name,
    privileges: privileges.map((p) => ({ resource: { db: dbName, collection: p.collection }, actions: p.actions })),
    roles: [],
  });
}

target.createUser({
  user: process.env.MONGO_APP_USERNAME,
  pwd: process.env.MONGO_APP_PASSWORD,
  roles: [{ role: "txnmon_admin", db: dbName }],
});
target.createUser({
  user: "txnmon_processor",
  pwd: process.env.MONGO_APP_PASSWORD,
  roles: [{ role: "txnmon_processor", db: dbName }],
});
target.createUser({
  user: "txnmon_events",
  pwd: process.env.MONGO_APP_PASSWORD,
  roles: [{ role: "txnmon_events", db: dbName }],
});
target.createUser({
  user: "txnmon_notify",
  pwd: process.env.MONGO_APP_PASSWORD,
  roles: [{ role: "txnmon_notify", db: dbName }],
});
target.createUser({
  user: "txnmon_desk",
  pwd: process.env.MONGO_APP_PASSWORD,
  roles: [{ role: "txnmon_desk", db: dbName }],
});
target.createUser({
  user: "txnmon_airflow",
  pwd: process.env.MONGO_APP_PASSWORD,
  roles: [{ role: "txnmon_airflow", db: dbName }],
});
target.createUser({
  user: process.env.MONGO_BI_USERNAME,
  pwd: process.env.MONGO_BI_PASSWORD,
  roles: [{ role: "read", db: dbName }],
});
