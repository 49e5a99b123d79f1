import pytest

from txnmon.settings import ConfigError, load_settings


def test_defaults_point_at_the_local_stack(monkeypatch):
    for var in ("KAFKA_BOOTSTRAP_SERVERS", "MONGO_URI", "MONGO_DB", "TOPIC_RAW", "TOPIC_ENRICHED",
                "TOPIC_DLQ", "CONSUMER_GROUP"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert s.mongo_uri.get_secret_value() == "mongodb://127.0.0.1:27017"
    assert s.mongo_db == "ecommerce_stream"
    assert (s.topic_raw, s.topic_enriched, s.topic_dlq) == (
        "transactions.raw", "transactions.enriched", "transactions.dlq")
    assert s.consumer_group == "txnmon-stream"


def test_environment_variables_override_defaults(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9093")
    monkeypatch.setenv("MONGO_DB", "shop")
    monkeypatch.setenv("TOPIC_RAW", "raw.v2")
    monkeypatch.setenv("CONSUMER_GROUP", "g2")
    s = load_settings()
    assert s.kafka_bootstrap_servers == "k1:9092,k2:9093"
    assert (s.mongo_db, s.topic_raw, s.consumer_group) == ("shop", "raw.v2", "g2")


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("KAFKA_BOOTSTRAP_SERVERS", "localhost", "KAFKA_BOOTSTRAP_SERVERS: must be a comma-separated list"),
        ("MONGO_URI", "postgres://x", "MONGO_URI: must start with mongodb://"),
        ("MONGO_DB", "bad.name", "MONGO_DB: must be a MongoDB database name"),
        ("TOPIC_RAW", "has space", "TOPIC_RAW: may use only letters"),
        ("TXNMON_TIMEZONE", "Mars/Olympus", "unknown time zone"),
        ("MAX_MESSAGE_BYTES", "ten", "MAX_MESSAGE_BYTES"),
        ("TOPIC_PARTITIONS", "0", "TOPIC_PARTITIONS"),
        ("KAFKA_SECURITY_PROTOCOL", "TLS", "KAFKA_SECURITY_PROTOCOL"),
        ("NOTIFY_ALLOWED_HOSTS", "hooks.example.com,http://x/y", "NOTIFY_ALLOWED_HOSTS: not a host name"),
        ("EVENTS_GROUP", "a group", "EVENTS_GROUP: may use only letters"),
        ("EVENTS_LATENESS_SECONDS", "-1", "EVENTS_LATENESS_SECONDS"),
        ("EVENTS_IDLE_CLOSE_SECONDS", "0", "EVENTS_IDLE_CLOSE_SECONDS"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, var, value, expected):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert expected in str(err.value)


def test_cross_field_rules(monkeypatch):
    monkeypatch.setenv("VALUE_MEDIUM_THRESHOLD", "50000")
    monkeypatch.setenv("VALUE_HIGH_THRESHOLD", "1000")
    with pytest.raises(ConfigError, match="VALUE_MEDIUM_THRESHOLD must be below"):
        load_settings()
    monkeypatch.delenv("VALUE_MEDIUM_THRESHOLD")
    monkeypatch.delenv("VALUE_HIGH_THRESHOLD")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ConfigError, match="KAFKA_SASL_MECHANISM is required"):
        load_settings()


def test_the_events_service_has_a_consumer_group_of_its_own(monkeypatch):
    assert load_settings().events_group == "txnmon-events"
    monkeypatch.setenv("EVENTS_GROUP", "txnmon-stream")
    with pytest.raises(ConfigError, match="EVENTS_GROUP must differ from CONSUMER_GROUP"):
        load_settings()


def test_secrets_never_appear_in_errors_or_display(monkeypatch):
    monkeypatch.setenv("MONGO_URI", "mongodb://admin:hunter2@db:27017/?authSource=admin")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    shown = load_settings().masked()
    assert shown["MONGO_URI"] == "mongodb://admin:***@db:27017/?authSource=admin"
    assert shown["KAFKA_SASL_PASSWORD"] == "***"
    assert "hunter2" not in repr(load_settings())
    monkeypatch.setenv("MONGO_URI", "http://admin:hunter2@db")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "hunter2" not in str(err.value)


def test_secret_uri_options_are_masked_and_the_rest_kept(monkeypatch, capsys):
    from txnmon.cli import main

    uri = ("mongodb://db:27017/?tls=true&tlsCertificateKeyFilePassword=k3y-pass&authSource=admin"
           "&authMechanismProperties=AWS_SESSION_TOKEN:t0ken&replicaSet=rs0")
    monkeypatch.setenv("MONGO_URI", uri)
    shown = load_settings().masked()["MONGO_URI"]
    assert shown == ("mongodb://db:27017/?tls=true&tlsCertificateKeyFilePassword=***&authSource=admin"
                     "&authMechanismProperties=***&replicaSet=rs0")
    assert main(["config"]) == 0
    printed = capsys.readouterr().out
    assert "k3y-pass" not in printed and "t0ken" not in printed and "replicaSet=rs0" in printed


def test_cli_exits_2_with_the_reason_on_bad_config(monkeypatch, capsys):
    from txnmon.cli import main

    monkeypatch.setenv("MONGO_DB", "")
    assert main(["config"]) == 2
    assert "MONGO_DB" in capsys.readouterr().err


def test_cli_rejects_bad_arguments(capsys):
    from txnmon.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["replay", "--speedup", "-3"])
    assert exc.value.code == 2
    assert "must be a finite number >= 0" in capsys.readouterr().err


def test_no_notify_belongs_to_a_window_replay(capsys):
    from txnmon.cli import main

    assert main(["replay", "--no-notify"]) == 2  # refused before any Kafka or MongoDB client is made
    assert "--no-notify goes with --from/--to" in capsys.readouterr().err


@pytest.mark.parametrize(("var", "value", "expected"), [
    ("TREND_FACTOR", "1", "greater than 1"),
    ("PAYMENT_SPIKE_FACTOR", "x", "valid number"),
    ("PAYMENT_SPIKE_MIN_INCREASE", "1.5", "less than 1"),
    ("TREND_WINDOW_BUCKETS", "0", "greater than or equal to 1"),
    ("SIGNAL_LATENESS_MINUTES", "-5", "greater than or equal to 0"),
])
def test_bad_signal_thresholds_name_the_variable(monkeypatch, var, value, expected):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert var in str(err.value) and expected in str(err.value)


def test_signal_thresholds_reach_the_signal_config(monkeypatch):
    from txnmon.jobs.business_signals import signal_config

    monkeypatch.setenv("TREND_FACTOR", "2.5")
    monkeypatch.setenv("PAYMENT_SPIKE_MIN_FAILED_USERS", "3")
    config = signal_config(load_settings())
    assert config.trend_factor == 2.5 and config.payment_min_failed_users == 3


@pytest.mark.parametrize(("var", "value", "expected"), [
    ("SENTIMENT_DROP", "0", "greater than 0"),
    ("SENTIMENT_DROP", "2.5", "less than or equal to 2"),
    ("SENTIMENT_WINDOW_HOURS", "0", "greater than or equal to 1"),
    ("SENTIMENT_BASELINE_DAYS", "365", "less than or equal to 90"),
    ("SENTIMENT_MIN_REVIEWS", "many", "valid integer"),
])
def test_bad_sentiment_thresholds_name_the_variable(monkeypatch, var, value, expected):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert var in str(err.value) and expected in str(err.value)


def test_sentiment_thresholds_reach_the_sentiment_config(monkeypatch):
    from txnmon.jobs.sentiment import sentiment_config

    assert sentiment_config(load_settings()).baseline_hours == 7 * 24
    monkeypatch.setenv("SENTIMENT_BASELINE_DAYS", "3")
    monkeypatch.setenv("SENTIMENT_DROP", "0.25")
    config = sentiment_config(load_settings())
    assert config.baseline_hours == 72 and config.drop == 0.25 and config.window_hours == 24


def test_the_notify_allow_list_is_local_by_default_and_read_as_a_list(monkeypatch):
    assert load_settings().notify_allowed_host_list == ("127.0.0.1", "localhost", "::1")
    monkeypatch.setenv("NOTIFY_ALLOWED_HOSTS", " hooks.slack.com, *.example.com ,10.0.0.0/8,")
    assert load_settings().notify_allowed_host_list == ("hooks.slack.com", "*.example.com", "10.0.0.0/8")
