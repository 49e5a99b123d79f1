"""The app in-process, Kafka replaced by an in-memory double (only here: the integration test,
tests/integration/api/test_serve.py, sends through the real broker)."""

import datetime as dt
import json
import threading
import time

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from txnmon.api import keys
from txnmon.api.app import ApiDeps, build_app
from txnmon.errors import KafkaUnavailable
from txnmon.settings import load_settings

NOW = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
GOOD = {"transaction_id": "t1", "user_id": "u1", "amount": 10.5, "payment_method": "card",
        "location": "Paris", "timestamp": "2026-01-01T11:00:00Z"}


class Kafka:
    """The raw topic as a list; `down` makes every send unacknowledged."""

    def __init__(self):
        self.sent, self.down = [], False

    def send(self, messages):
        if self.down:
            raise KafkaUnavailable("down")
        self.sent += list(messages)
        return []


def make(**overrides):
    kafka = Kafka()
    key, record = keys.new_key("shop", NOW)
    records = {record["key_id"]: record}
    app_settings = load_settings(**{"api_rate_burst": 1000, "api_max_body_bytes": 4096, **overrides})
    mongo_up = {"ok": True}

    def ping():
        if not mongo_up["ok"]:
            raise ConnectionError("no server")

    deps = ApiDeps(settings=app_settings, send=kafka.send, find_key=records.get,
                   probes={"kafka": lambda: not kafka.down, "mongodb": ping}, wall=lambda: NOW)
    client = TestClient(build_app(deps), headers={"Authorization": f"Bearer {key}"})
    return client, kafka, mongo_up


def test_a_batch_is_sent_and_a_bad_record_refused_naming_the_field():
    client, kafka, _ = make()
    bad = {**GOOD, "transaction_id": "t2", "amount": "lots"}
    r = client.post("/v1/transactions", json={"transactions": [GOOD, bad]})
    assert r.status_code == 202
    assert r.json()["accepted"] == ["t1"]
    assert r.json()["rejected"][0]["field"] == "amount"
    assert [json.loads(v)["transaction_id"] for _, v, _ in kafka.sent] == ["t1"]
    r = client.post("/v1/transactions", json=bad)
    assert r.status_code == 422 and r.json()["rejected"][0]["field"] == "amount"


def test_the_same_transaction_id_twice_is_accepted_once():
    client, kafka, _ = make()
    assert client.post("/v1/transactions", json=GOOD).status_code == 202
    r = client.post("/v1/transactions", json=GOOD)
    assert (r.status_code, r.json()["duplicate"]) == (200, True)
    assert len(kafka.sent) == 1


def test_an_idempotency_key_repeat_returns_the_first_answer():
    client, kafka, _ = make()
    first = client.post("/v1/transactions", json=GOOD, headers={"Idempotency-Key": "abc"})
    again = client.post("/v1/transactions", json=GOOD, headers={"Idempotency-Key": "abc"})
    assert (again.status_code, again.json()) == (first.status_code, first.json()) == (202, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(kafka.sent) == 1


def test_no_key_or_a_wrong_key_is_401_with_a_reason():
    client, _, _ = make()
    assert client.post("/v1/transactions", json=GOOD, headers={"Authorization": ""}).status_code == 401
    r = client.post("/v1/transactions", json=GOOD, headers={"Authorization": "Bearer txn_0123456789abcdef_" + "x" * 43})
    assert r.status_code == 401 and r.json()["reason"]


def test_a_large_body_is_413_and_a_flood_is_429_with_retry_after():
    client, _, _ = make(api_rate_burst=2, api_rate_per_second=0.01)
    assert client.post("/v1/transactions", content=b"x" * 5000).status_code == 413
    client.post("/v1/transactions", json=GOOD)
    r = client.post("/v1/transactions", json=GOOD)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and r.json()["reason"]


def test_kafka_down_is_503_and_the_retry_is_not_a_duplicate():
    client, kafka, _ = make()
    kafka.down = True
    assert client.post("/v1/transactions", json=GOOD).status_code == 503
    kafka.down = False
    assert client.post("/v1/transactions", json=GOOD).status_code == 202


def test_a_key_store_outage_is_503_without_the_stores_own_words():
    from txnmon.errors import StoreUnavailable

    def down(key_id):
        raise StoreUnavailable("mongodb://10.1.2.3:27017 unreachable")

    deps = ApiDeps(settings=load_settings(), send=Kafka().send, find_key=down, probes={}, wall=lambda: NOW)
    key, _ = keys.new_key("shop", NOW)
    r = TestClient(build_app(deps), headers={"Authorization": f"Bearer {key}"}).post("/v1/transactions", json=GOOD)
    assert r.status_code == 503 and "10.1.2.3" not in r.text and r.json()["reason"]


def test_health_and_readiness_name_what_is_down():
    client, kafka, mongo = make()
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    kafka.down, mongo["ok"] = True, False
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json()["unavailable"] == ["kafka", "mongodb"]
    assert client.get("/docs").status_code == 200
    assert "/v1/transactions" in client.get("/openapi.json").json()["paths"]


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=5),
                    max_leaves=20)
FIELD_VALUES = st.one_of(JSON, st.sampled_from(["t1", "2026-01-01T10:00:00Z", "30-09-2025 10:05", "card", "-1", "1e3"]))
TRANSACTIONISH = st.fixed_dictionaries({}, optional={k: FIELD_VALUES for k in [*GOOD, "status", "quantity", "type"]})
BODIES = st.one_of(JSON, TRANSACTIONISH, st.builds(lambda txs: {"transactions": txs}, st.lists(TRANSACTIONISH | JSON,
                                                                                                    max_size=5)))
CLIENT, _, _ = make(api_max_body_bytes=1 << 20, api_rate_burst=1_000_000)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES)
@example(body={**GOOD, "note": "\ud800"})  # a lone surrogate: valid JSON, no UTF-8 text (was a 500)
@example(body={"transactions": [GOOD, {**GOOD, "transaction_id": "t9", "location": "\udfff"}]})
def test_any_json_body_is_answered_2xx_or_4xx_with_a_reason_never_500(body):
    r = CLIENT.post("/v1/transactions", content=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 202, 400, 413, 422), r.text
    answer = r.json()
    if r.status_code >= 400:
        assert answer["reason"]
        if r.status_code == 422:
            assert all(rejected["detail"] for rejected in answer["rejected"])


def test_readiness_answers_while_many_requests_wait_on_kafka():
    import threading
    import time

    release, sent = threading.Event(), []

    def stuck_send(messages):  # Kafka that does not acknowledge until released
        release.wait(30)
        sent.extend(messages)
        return []

    deps = ApiDeps(settings=load_settings(api_rate_burst=1000), send=stuck_send, find_key=lambda _k: None,
                   probes={"kafka": lambda: True})
    key, record = keys.new_key("shop", NOW)
    deps.find_key = {record["key_id"]: record}.get
    # one event loop for every request (as Uvicorn runs them): a TestClient outside `with` gives each its own
    with TestClient(build_app(deps), headers={"Authorization": f"Bearer {key}"}) as stuck:
        posts = [threading.Thread(target=stuck.post, args=("/v1/transactions",),
                                  kwargs={"json": {**GOOD, "transaction_id": f"t{i}"}}) for i in range(48)]
        for t in posts:
            t.start()
        time.sleep(1.0)  # every request is waiting for Kafka (more than Starlette's 40 threads)
        try:
            started = time.monotonic()
            result: list[int] = []
            probe = threading.Thread(target=lambda: result.append(stuck.get("/readyz").status_code))
            probe.start()
            probe.join(5)
            assert result == [200] and time.monotonic() - started < 5
        finally:
            release.set()
            for t in posts:
                t.join(30)
    assert len(sent) == 48


def _sample(page: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in page.splitlines():
        if line.startswith(f"{name}{{{want}}} " if want else f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_records_rejections_sends_and_rate_limits():
    client, _kafka, _ = make(api_rate_burst=3, api_rate_per_second=0.01)
    bad = {**GOOD, "transaction_id": "t2", "amount": "lots"}
    assert client.post("/v1/transactions", json={"transactions": [GOOD, bad]}).status_code == 202
    assert client.post("/v1/transactions", json=GOOD).status_code == 200  # a duplicate
    assert client.post("/v1/transactions", json=GOOD).status_code == 200
    assert client.post("/v1/transactions", json=GOOD).status_code == 429
    r = client.get("/metrics", headers={"Authorization": ""})  # no key needed
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    page = r.text
    route = "/v1/transactions"
    assert _sample(page, "txnmon_api_requests_total", method="POST", route=route, status="202") == 1
    assert _sample(page, "txnmon_api_requests_total", method="POST", route=route, status="200") == 2
    assert _sample(page, "txnmon_api_rate_limited_total") == 1
    assert _sample(page, "txnmon_api_records_total", outcome="accepted") == 1
    assert _sample(page, "txnmon_api_records_total", outcome="duplicate") == 2
    assert _sample(page, "txnmon_api_records_rejected_total", reason="bad_amount") == 1
    assert _sample(page, "txnmon_api_kafka_send_seconds_count") == 1
    client.get("/no/such/path")
    assert _sample(client.get("/metrics").text, "txnmon_api_requests_total", method="GET", route="unmatched",
                   status="404") == 1
    assert "shop" not in page and "t1" not in page  # no key name, no transaction id as a label
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES, wait=st.sampled_from(["0", "1", "", "x", "-3", "99999999", None]))
@example(body={**GOOD, "note": "\ud800"}, wait="0")
@example(body={"transactions": [GOOD]}, wait=None)
@example(body=GOOD, wait="\u00b2")  # "²".isdigit() is True and int() refuses it (was a 500)
@example(body=GOOD, wait="\u0663")  # an Arabic-Indic 3: a digit to Python, not a number of milliseconds
def test_any_json_body_to_decisions_is_answered_2xx_or_4xx_with_a_reason_never_500(body, wait):
    query = "" if wait is None else f"?wait_ms={wait}"
    r = CLIENT.post(f"/v1/decisions{query}", content=json.dumps(body).encode(),
                    headers={"Content-Type": "application/json"})
    assert r.status_code in (200, 202, 400, 413, 422), r.text
    answer = r.json()
    if r.status_code >= 400:
        assert answer["reason"]
    else:  # nothing judges here: every accepted transaction is pending, with where to ask again
        assert answer["decision"] == "pending" and answer["location"].startswith("/v1/decisions/")


def test_metrics_labels_stay_bounded_whatever_method_or_path_a_client_sends():
    client, _kafka, _ = make()
    for i in range(5):  # h11 accepts any token as a method: each must not become a series of its own
        client.request(f"BREW{i}", "/v1/transactions")
        client.request(f"X{i}", f"/no/such/path/{i}")
        client.get(f"/v1/decisions/tx-{i}")
    page = client.get("/metrics").text
    lines = [line for line in page.splitlines() if line.startswith("txnmon_api_requests_total{")]
    assert "BREW" not in page and "tx-" not in page and "/no/such" not in page
    assert {line.split('method="')[1].split('"')[0] for line in lines} <= {"GET", "POST", "other"}
    assert _sample(page, "txnmon_api_requests_total", method="other", route="/v1/transactions", status="405") == 5
    assert _sample(page, "txnmon_api_requests_total", method="other", route="unmatched", status="404") == 5
    decisions = [line for line in lines if 'route="/v1/decisions/{transaction_id:path}"' in line]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in decisions) == 5


def test_stopping_the_app_lets_its_worker_threads_go():
    client, _kafka, _ = make()
    before = set(threading.enumerate())
    with TestClient(client.app, headers={"Authorization": client.headers["Authorization"]}) as running:
        assert running.post("/v1/transactions", json=GOOD).status_code == 202
        assert running.get("/readyz").status_code == 200
        mine = [t for t in set(threading.enumerate()) - before if t.name.startswith("txnmon-api-")]
        assert mine  # the app's ingest and probe pools
    deadline = time.monotonic() + 5
    while any(t.is_alive() for t in mine) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(t.is_alive() for t in mine)
