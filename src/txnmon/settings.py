"""One settings object for every part of txnmon, read from environment variables.

    from txnmon.settings import settings          # lazily built on first use
    from txnmon.settings import load_settings     # explicit, raises ConfigError

Every value has a safe local default, so a fresh clone talks to the dev stack with no set-up.
Credentials are never defaults: Kafka SASL/SSL and MongoDB auth come only from the environment
(see `.env.example`). A bad value raises `ConfigError` naming the variable and what is wrong.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from txnmon.errors import ConfigError

__all__ = ["ConfigError", "Settings", "get_settings", "load_settings"]

# The package's own files (rules, routes, suites, cities, map outlines, the seed sample) ship in
# txnmon/data. PROJECT_ROOT, home of reports/ and .devstack/, is the checkout when txnmon runs from
# one (the dev stack and the image install it editable), else the working directory: an installed
# wheel must not write into site-packages.
PACKAGE_DIR = Path(__file__).resolve().parent
PACKAGE_DATA = PACKAGE_DIR / "data"
_CHECKOUT = PACKAGE_DIR.parents[1]
PROJECT_ROOT = _CHECKOUT if (_CHECKOUT / "pyproject.toml").is_file() else Path.cwd()
SAMPLE_CSV = PACKAGE_DATA / "sample_transactions.csv"
DEFAULT_RULES_FILE = PACKAGE_DATA / "rules" / "rules.yaml"
DEFAULT_ROUTES_FILE = PACKAGE_DATA / "notify" / "routes.yaml"

_HOSTPORT = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:\d{1,5}$")
_ALLOWED_HOST = re.compile(r"^(\*\.)?[A-Za-z0-9._\-:\[\]]+(/\d{1,3})?$")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # --- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    topic_raw: str = "transactions.raw"
    topic_enriched: str = "transactions.enriched"
    topic_dlq: str = "transactions.dlq"
    # internal topics, created by `txnmon init` with TOPIC_PARTITIONS partitions: every valid raw
    # message re-keyed by its normalised user_id (so one user's events meet on one partition,
    # whatever key the producer used), and the detector's per-user state, compacted, partition p
    # holding the users of by-user partition p, written in the same transaction as the offsets
    topic_by_user: str = "transactions.by_user"
    topic_state: str = "txnmon.user_state"
    # the other event kinds' raw topics (docs/events.md), created by `txnmon init` too
    topic_carts: str = "carts.raw"
    topic_inventory: str = "inventory.raw"
    topic_reviews: str = "reviews.raw"
    topic_partitions: int = Field(3, ge=1, le=1000)
    topic_replication_factor: int = Field(1, ge=1, le=10)
    consumer_group: str = "txnmon-stream"
    # `txnmon events` (docs/events.md): its own group on the three event topics, and event time "closed" for
    # the analyses this far behind the slowest input (or, after this long without input, at the newest seen)
    events_group: str = "txnmon-events"
    events_lateness_seconds: int = Field(300, ge=0, le=7 * 24 * 3600)
    events_idle_close_seconds: float = Field(60.0, gt=0, le=24 * 3600)
    events_metrics_port: int = Field(9112, ge=0, le=65535)  # /metrics of `txnmon events` (METRICS_ADDRESS); 0: off
    kafka_bootstrap_timeout_ms: int = Field(10_000, ge=100)  # give up reaching the brokers after this

    # --- MongoDB -------------------------------------------------------------------------
    # The URI may carry credentials in production; it is shown masked by `txnmon config`.
    mongo_uri: SecretStr = SecretStr("mongodb://127.0.0.1:27017")
    mongo_db: str = "ecommerce_stream"
    mongo_username: str | None = None
    mongo_password: SecretStr | None = None
    mongo_timeout_ms: int = Field(5000, ge=100)
    # Write concern of every write: acknowledged only once a majority of the replica set has it,
    # in its journal, so offsets are never committed for writes a failover can roll back.
    mongo_write_concern: str = "majority"  # "majority" or a number of members, e.g. 1
    mongo_journal: bool = True

    # --- Processing ----------------------------------------------------------------------
    txnmon_timezone: str = "UTC"  # zone for naive timestamps in the input
    # raw messages above this go to the DLQ as too_large; kept well under the producer's 1 MiB
    # request limit so an enriched copy (the input plus a few fields) always fits
    max_message_bytes: int = Field(64 * 1024, ge=256, le=512 * 1024)
    # a DLQ copy keeps at most this many bytes of the original (header txnmon.truncated says so);
    # the whole original stays in the `rejected` collection
    dlq_max_bytes: int = Field(256 * 1024, ge=1024, le=900 * 1024)
    # a transaction this much older than the newest event time seen is flagged late (and still stored)
    late_after_seconds: int = Field(3600, ge=0)
    value_medium_threshold: float = Field(5_000, gt=0)
    value_high_threshold: float = Field(20_000, gt=0)
    rules_file: Path = DEFAULT_RULES_FILE
    batch_max_records: int = Field(2000, ge=1, le=100_000)
    poll_timeout_ms: int = Field(200, ge=1, le=60_000)
    # after a batch that forwarded records to the by-user topic, wait up to this long (gathering what else
    # arrives) for their by-user copies before starting the next batch: they become readable only once the
    # batch's transaction commits, and without the wait they miss the next batch and sit out a whole one
    # (a decision crosses both hops; docs/api.md). 0: start the next batch at once
    by_user_linger_ms: int = Field(25, ge=0, le=1000)
    # a poll holding raw and by-user records: route the raw ones in a transaction of their own first, and judge
    # their by-user copies with the by-user ones (one batch of MongoDB writes per transaction, not two)
    route_first: bool = True
    # insert a batch's transactions into MongoDB in parts of this many while the rest is still being judged,
    # so the store works while the processor judges (src/txnmon/pipeline/write_ahead.py); 0: after judging
    write_ahead_records: int = Field(250, ge=0, le=100_000)
    metrics_port: int = Field(9108, ge=0, le=65535)  # 0 disables the /metrics endpoint
    metrics_address: str = "127.0.0.1"  # 0.0.0.0 to let a Prometheus on another host scrape it
    log_format: Literal["text", "json"] = "text"
    # The dashboard is read-only unless the operator turns triage on and says who marks: marks are
    # recorded under that identity (one analyst per dashboard deployment, e.g. behind an SSO proxy).
    dashboard_triage: bool = False
    # cases: a user's alerts within this many minutes of the case's first alert share one case
    case_window_minutes: int = Field(24 * 60, ge=1, le=366 * 24 * 60)
    # how often the processor reloads the named lists (between batches)
    lists_refresh_seconds: float = Field(2.0, gt=0, le=3600)
    # score with the promoted model even when no typology weighs `model_score` (the scores are then only
    # stored, for comparing a model before the rules give it a weight); off: the CPU is spent only when
    # the model can change a verdict (docs/model.md)
    model_shadow_scoring: bool = False
    dashboard_analyst: str | None = None

    # --- Notifications (docs/notifications.md) ---------------------------------------------
    # which events go to which destinations; reloaded by the processor without a restart. Secrets
    # (webhook URLs, HMAC keys, SMTP logins) are never here: the file names environment variables.
    notify_routes_file: Path = DEFAULT_ROUTES_FILE
    notify_max_attempts: int = Field(8, ge=1, le=100)  # then the entry is dead-lettered
    notify_backoff_base_seconds: float = Field(2.0, gt=0, le=3600)  # first retry after 1-2 s, doubling
    notify_backoff_max_seconds: float = Field(600.0, gt=0, le=86_400)
    notify_lease_seconds: float = Field(60.0, ge=1, le=3600)  # a claimed entry is another worker's after this
    notify_poll_seconds: float = Field(0.1, gt=0, le=60)  # how often an idle worker looks for due entries
    notify_metrics_port: int = Field(9109, ge=0, le=65535)  # /metrics of `txnmon notify` (METRICS_ADDRESS); 0: off
    # the only hosts a notification may go to (SMTP hosts, the hosts of webhook and chat URLs), comma-
    # separated: names, *.domain (its subdomains), IP addresses, networks (10.0.0.0/8). Whoever edits
    # the routes file must not be able to send the worker's secrets to a host of their choosing;
    # link-local and cloud metadata addresses are refused even when listed
    notify_allowed_hosts: str = "127.0.0.1,localhost,::1"
    # --- HTTP API (`txnmon serve`, docs/api.md) ----------------------------------------------
    api_host: str = "127.0.0.1"  # 0.0.0.0 to serve other hosts (put TLS in front)
    api_port: int = Field(8088, ge=0, le=65535)
    api_max_body_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)  # larger bodies: 413
    api_max_records: int = Field(1000, ge=1, le=100_000)  # records in one POST /v1/transactions
    api_rate_per_second: float = Field(50.0, gt=0, le=100_000)  # requests per key, sustained
    api_rate_burst: int = Field(100, ge=1, le=1_000_000)  # requests per key, at once
    api_dedup_seconds: float = Field(600.0, ge=0, le=7 * 86_400)  # a transaction id seen this recently: duplicate
    api_dedup_max_ids: int = Field(1_000_000, ge=0, le=100_000_000)  # memory bound of that window
    api_key_cache_seconds: float = Field(5.0, ge=0, le=3600)  # a revoked key stops working within this
    api_send_timeout_seconds: float = Field(10.0, ge=1, le=300)  # Kafka's acknowledgement, or 503 for the records
    # POST /v1/decisions waits this long for the processor's verdict unless the caller says (?wait_ms=),
    # never longer than the maximum; past it the answer is `pending` with the URL to ask again
    api_decision_wait_ms: int = Field(1000, ge=0, le=60_000)
    api_decision_max_wait_ms: int = Field(5000, ge=0, le=60_000)
    api_decision_poll_ms: int = Field(20, ge=1, le=1000)  # one MongoDB read per tick for all waiting requests
    # --- Business signals (src/txnmon/core/business_signals.py; docs/signals.md), all in event time ------------
    # a 5-minute bucket is decided once the processor's event-time watermark (its slowest input
    # partition) is this far past the bucket's end: later data for it is not taken into account
    signal_lateness_minutes: int = Field(10, ge=0, le=24 * 60)
    payment_spike_factor: float = Field(4.0, gt=1, le=1000)  # failure rate vs the trailing baseline
    payment_spike_min_increase: float = Field(0.15, gt=0, lt=1)  # ... and at least this much above it
    payment_spike_baseline_buckets: int = Field(12, ge=1, le=2016)
    payment_spike_min_transactions: int = Field(20, ge=1)  # a bucket with fewer decides nothing
    payment_spike_min_failed_users: int = Field(8, ge=1)  # one card tester is no gateway outage
    trend_window_buckets: int = Field(3, ge=1, le=288)
    trend_baseline_buckets: int = Field(12, ge=1, le=2016)
    trend_factor: float = Field(3.0, gt=1, le=1000)
    trend_min_sales: int = Field(20, ge=1)
    new_region_min_sales: int = Field(10, ge=1)
    # --- Stock depletion (src/txnmon/core/stock.py; docs/events.md), in event time ---------------------------
    stock_rate_window_minutes: int = Field(120, ge=1, le=7 * 24 * 60)  # the depletion rate: units sold in it, per hour
    stock_lead_time_minutes: int = Field(240, ge=1, le=30 * 24 * 60)  # how long a restock takes to arrive
    # a projection is checked at sales only: the alert opens this much before the lead time so that it
    # still comes at least the lead time before the stock-out when it is one sale late
    stock_alert_margin_minutes: int = Field(30, ge=0, le=24 * 60)
    # --- Review sentiment (src/txnmon/core/sentiment.py; docs/events.md), all in event time ----------------
    # a product's mean compound score (-1 .. +1) over the last SENTIMENT_WINDOW_HOURS against the
    # SENTIMENT_BASELINE_DAYS before them; a drop of SENTIMENT_DROP or more, with at least
    # SENTIMENT_MIN_REVIEWS reviews on each side, is one `sentiment_drop` ops alert per episode
    sentiment_window_hours: int = Field(24, ge=1, le=30 * 24)
    sentiment_baseline_days: int = Field(7, ge=1, le=90)
    sentiment_min_reviews: int = Field(10, ge=1, le=1_000_000)
    sentiment_drop: float = Field(0.4, gt=0, le=2)  # the compound scale spans 2
    # --- Cart abandonment (src/txnmon/core/abandonment.py; docs/events.md), all in event time --------------
    # a cart with no purchase of its user by its last event + this is abandoned; at most the generator's
    # 2 h quiet time after an abandoned cart (src/txnmon/synthetic/carts.py), so its labels stay right; at
    # least 30: a live cart may sit that long between two events (its end is its last event before a
    # longer gap), and with less, generated purchased carts were called abandoned (measured: 25 min, 2-8 %)
    abandon_timeout_minutes: int = Field(60, ge=30, le=120)
    abandon_repeat_count: int = Field(2, ge=2, le=100)  # abandonments within ABANDON_REPEAT_HOURS: intervene
    abandon_repeat_hours: int = Field(24, ge=1, le=24 * 31)
    abandon_after_failed_minutes: int = Field(15, ge=1, le=24 * 60)  # a cart this soon after a failed payment
    reports_dir: Path = PROJECT_ROOT / "reports"  # quality reports (Data Docs) and backtest reports
    # where people open REPORTS_DIR/quality in a browser: the reports app in Airflow's API server
    reports_url: str = "http://127.0.0.1:8080/txnmon/quality/"
    # the only folders DAG params may name files in (replay CSVs; candidate rules for backtests)
    data_dir: Path = PACKAGE_DATA
    # risk model artifacts (`txnmon models train`); their checksums and metadata are in model_versions
    models_dir: Path = PROJECT_ROOT / "models"
    rules_dir: Path = PACKAGE_DATA / "rules"

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        if not hosts or not all(_HOSTPORT.match(h) for h in hosts):
            raise ValueError("must be a comma-separated list of host:port, e.g. 127.0.0.1:9092")
        return ",".join(hosts)

    @field_validator("mongo_uri")
    @classmethod
    def _check_mongo_uri(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value()
        if not raw.startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value

    @field_validator("mongo_write_concern")
    @classmethod
    def _check_write_concern(cls, value: str) -> str:
        if value != "majority" and not (value.isdigit() and int(value) >= 1):
            raise ValueError('must be "majority" or a number of members >= 1')
        return value

    @field_validator("mongo_db")
    @classmethod
    def _check_db_name(cls, value: str) -> str:
        if not value or any(c in value for c in '/\\. "$') or len(value) > 63:
            raise ValueError("must be a MongoDB database name: 1-63 chars, none of / \\ . space \" $")
        return value

    @field_validator("topic_raw", "topic_enriched", "topic_dlq", "topic_by_user", "topic_state", "topic_carts",
                     "topic_inventory", "topic_reviews", "consumer_group", "events_group")
    @classmethod
    def _check_topic(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._\-]{1,249}", value):
            raise ValueError("may use only letters, digits, '.', '_' and '-' (1-249 chars)")
        return value

    @field_validator("notify_allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, value: str) -> str:
        hosts = [h.strip() for h in value.split(",") if h.strip()]
        bad = [h for h in hosts if not _ALLOWED_HOST.match(h)]
        if bad:
            raise ValueError(f"not a host name, *.domain, IP address or network: {', '.join(bad)}")
        return ",".join(hosts)

    @field_validator("txnmon_timezone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Kolkata)") from exc
        return value

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.value_medium_threshold >= self.value_high_threshold:
            raise ValueError("VALUE_MEDIUM_THRESHOLD must be below VALUE_HIGH_THRESHOLD")
        if self.kafka_security_protocol.startswith("SASL") and not self.kafka_sasl_mechanism:
            raise ValueError("KAFKA_SASL_MECHANISM is required when KAFKA_SECURITY_PROTOCOL is SASL_*")
        if (self.mongo_username is None) != (self.mongo_password is None):
            raise ValueError("MONGO_USERNAME and MONGO_PASSWORD must be set together")
        if self.dashboard_triage and not (self.dashboard_analyst or "").strip():
            raise ValueError("DASHBOARD_ANALYST is required when DASHBOARD_TRIAGE is on (whose marks they are)")
        if len(set(self.pipeline_topics)) != len(self.pipeline_topics):
            raise ValueError("TOPIC_RAW, TOPIC_ENRICHED, TOPIC_DLQ, TOPIC_BY_USER and TOPIC_STATE must be "
                             "five different topics")
        if len(set(self.init_topics)) != len(self.init_topics):
            raise ValueError("TOPIC_CARTS, TOPIC_INVENTORY and TOPIC_REVIEWS must differ from each other and "
                             "from the pipeline's topics")
        if self.events_group == self.consumer_group:
            # one group for both would split the event topics' partitions and the transactions' among
            # two different programs, each ignoring what it was given of the other's
            raise ValueError("EVENTS_GROUP must differ from CONSUMER_GROUP")
        return self

    @property
    def pipeline_topics(self) -> tuple[str, ...]:
        return (self.topic_raw, self.topic_enriched, self.topic_dlq, self.topic_by_user, self.topic_state)

    @property
    def event_topics(self) -> tuple[str, ...]:
        """The raw topics of the other event kinds: carts, stock, reviews (docs/events.md)."""
        return (self.topic_carts, self.topic_inventory, self.topic_reviews)

    @property
    def init_topics(self) -> tuple[str, ...]:
        """Every topic `txnmon init` creates."""
        return self.pipeline_topics + self.event_topics

    @property
    def notify_allowed_host_list(self) -> tuple[str, ...]:
        return tuple(h for h in self.notify_allowed_hosts.split(",") if h)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.txnmon_timezone)

    def masked(self) -> dict[str, Any]:
        """Settings for display: secrets hidden, the password in a URI replaced by ***."""
        shown: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
                value = mask_uri(value) if name == "mongo_uri" else "***"
            shown[name.upper()] = str(value) if isinstance(value, Path) else value
        return shown


# URI options that carry a secret (tlsCertificateKeyFilePassword, authMechanismProperties with an AWS
# session token, ...): matched by name, case-insensitively, so an option added later is hidden too
_SECRET_OPTION = re.compile(r"(?i)(password|secret|token|authmechanismproperties|key)")


def mask_uri(uri: str) -> str:
    """A connection URI for display: the password in the user part and every secret option's value
    replaced by ***."""
    shown = re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", uri)
    base, sep, query = shown.partition("?")
    if not sep:
        return shown
    options = []
    for option in query.split("&"):
        key, eq, _ = option.partition("=")
        options.append(f"{key}=***" if eq and _SECRET_OPTION.search(key) else option)
    return base + "?" + "&".join(options)


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]).upper() or "settings"
        msg = err["msg"].removeprefix("Value error, ")
        given = err.get("input")
        secret = any(word in where for word in ("PASSWORD", "URI"))  # may hold credentials
        given_txt = "" if secret or isinstance(given, dict) or given is None else f" (got {given!r})"
        lines.append(f"{where}: {msg}{given_txt}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (plus explicit overrides); raise ConfigError if invalid."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


@functools.cache
def get_settings() -> Settings:
    """The environment's settings, built once per process (the CLI, the dashboard). A DAG task builds
    its own with the Airflow connections' values (txnmon.airflow.connections) and passes them on."""
    return load_settings()


def __getattr__(name: str) -> Any:
    # `from txnmon.settings import settings` stays lazy so that importing a DAG file never
    # fails on a bad variable at parse time; the task that needs settings reports it.
    if name == "settings":
        return get_settings()
    raise AttributeError(name)
