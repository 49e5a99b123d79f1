// Runs once when the mongo container initialises its data directory.
// Creates the application user (readWrite) and a read-only user for BI tools.
const dbName = process.env.MONGO_DB || "ecommerce_stream";
const target = db.getSiblingDB(dbName);
target.createUser({
  user: process.env.MONGO_APP_USERNAME,
  pwd: process.env.MONGO_APP_PASSWORD,
  roles: [{ role: "readWrite", db: dbName }],
});
target.createUser({
  user: process.env.MONGO_BI_USERNAME,
  pwd: process.env.MONGO_BI_PASSWORD,
  roles: [{ role: "read", db: dbName }],
});
