"""The read side in-process: Kafka a list, the processor's stored verdicts a dict (the integration test,
tests/integration/api/test_decisions.py, runs the real processor)."""

import asyncio
import concurrent.futures
import datetime as dt
import json
import time

import httpx
from fastapi.testclient import TestClient

from txnmon.api import decisions, keys
from txnmon.api.app import ApiDeps, build_app
from txnmon.errors import StoreUnavailable
from txnmon.settings import load_settings

NOW = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
S = load_settings()


def tx(tid, **fields):
    return {"transaction_id": tid, "user_id": "u1", "amount": 10.5, "payment_method": "card", "location": "Paris",
            "timestamp": "2026-01-01T11:00:00Z", **fields}


class Pipeline:
    """The raw topic as a list and, when `running`, a processor that stores a verdict for each message sent:
    an alert of severity `severity[tid]` for the ids named there, none for the others."""

    def __init__(self, running=True, severity=None):
        self.sent, self.stored, self.running, self.severity = [], {}, running, severity or {}
        self.reads, self.down = 0, False
        self.later = {}  # alerts a later transaction completed about a stored one: read only with `about`

    def send(self, messages):
        self.sent += list(messages)
        if self.running:
            for _, value, _ in messages:
                self.judge(json.loads(value))
        return []

    def judge(self, record):
        tid = record["transaction_id"]
        _, fingerprint = decisions.identity(record, zone=S.zone, now=NOW, max_bytes=S.max_message_bytes)
        rules = ["high_value_new_country"] if tid in self.severity else []
        doc = {"_id": tid, "alert_reasons": rules, "risk_score": 65 if rules else 0, "rules_version": "2",
               "content_hash": fingerprint, "processed_time": NOW}
        alerts = [{"_id": f"{tid}:{r}", "alert_id": f"{tid}:{r}", "transaction_id": tid, "rule": r,
                   "severity": self.severity[tid], "reason": "amount 40,000.00 from a new country", "mode": "live",
                   "explanation": {"signals": {"new_country": 30}}} for r in rules]
        self.stored[tid] = (doc, alerts)

    def read_verdicts(self, ids, about):
        self.reads += 1
        if self.down:
            raise StoreUnavailable("mongodb://10.1.2.3 unreachable")
        return {i: (self.stored[i][0], [*self.stored[i][1], *(self.later.get(i, []) if about else [])])
                for i in ids if i in self.stored}


def make(pipeline, scopes=("ingest", "read"), record_of=None, **overrides):
    app, key = make_app(pipeline, scopes, record_of, **overrides)
    return TestClient(app, headers={"Authorization": f"Bearer {key}"})


LISTED = {"_id": "t8:listed", "alert_id": "t8:listed", "transaction_id": "t8", "rule": "listed", "severity": "high",
          "reason": "user_id u1 is on blocked_users (chargebacks, added by alice@desk)", "mode": "live",
          "created_at": NOW, "explanation": {"rule": "listed", "entries": [
              {"_id": "blocked_users:u1", "list": "blocked_users", "reason": "chargebacks", "added_by": "alice@desk"}]}}
# what src/txnmon/jobs/api_reads.py finds: the stored documents as they are, notes and all
FOUND_ALERTS = {
    "t9:velocity": {"alert": {"_id": "t9:velocity", "rule": "velocity", "created_at": NOW, "mode": "live"},
                    "collection": "alerts", "counted_transactions": [],
                    "disposition": {"_id": "t9:velocity", "disposition": "false_positive", "at": NOW,
                                    "reason": "called the customer at home", "by": "bob",
                                    "history": [{"reason": "called the customer at home", "by": "bob"}]},
                    "case": {"case_id": "case-1", "status": "closed", "resolution": "legitimate", "severity": "high"}},
    "t8:listed": {"alert": LISTED, "collection": "alerts", "counted_transactions": [], "disposition": None,
                  "case": None},
    "t9:trial": {"alert": {"_id": "t9:trial", "rule": "trial", "mode": "shadow"}, "collection": "shadow_alerts",
                 "counted_transactions": [], "disposition": None, "case": None}}
FOUND_CASES = {"case-1": {"case": {"_id": "case-1", "case_id": "case-1", "status": "closed", "resolution": "legitimate",
                                   "assignee": "bob", "closed_by": "bob", "notes": [{"text": "spoke to the customer",
                                                                                      "by": "bob", "at": NOW}]},
                          "alerts": [LISTED, {"_id": "t9:trial", "rule": "trial", "mode": "shadow"}]}}


def make_app(pipeline, scopes=("ingest", "read"), record_of=None, **overrides):
    key, record = keys.new_key("shop", NOW, scopes)
    record = record_of(record) if record_of else record
    app_settings = load_settings(**{"api_rate_burst": 1000, "api_decision_poll_ms": 5, **overrides})
    deps = ApiDeps(settings=app_settings, send=pipeline.send, find_key={record["key_id"]: record}.get, probes={},
                   wall=lambda: NOW, read_verdicts=pipeline.read_verdicts, find_alert=FOUND_ALERTS.get,
                   find_case=FOUND_CASES.get)
    return build_app(deps), key


def test_a_decision_is_the_processors_verdict_with_the_alerts_explanation():
    pipeline = Pipeline(severity={"big": "high", "odd": "medium"})
    client = make(pipeline)
    r = client.post("/v1/decisions", json=tx("big", amount=40_000))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert (answer["decision"], answer["score"], answer["rules_version"]) == ("decline", 65, "2")
    assert answer["alerts"][0]["reason"] == "amount 40,000.00 from a new country"
    assert answer["alerts"][0]["explanation"] == {"signals": {"new_country": 30}}
    assert client.post("/v1/decisions", json=tx("odd")).json()["decision"] == "review"
    clean = client.post("/v1/decisions", json=tx("clean"))
    assert (clean.status_code, clean.json()["decision"], clean.json()["alerts"]) == (200, "approve", [])


def test_past_the_deadline_it_is_pending_then_get_returns_the_verdict():
    pipeline = Pipeline(running=False)
    client = make(pipeline)
    r = client.post("/v1/decisions?wait_ms=60", json=tx("t1"))
    assert r.status_code == 202 and r.json()["decision"] == "pending"
    assert r.headers["Location"] == r.json()["location"] == "/v1/decisions/t1"
    assert client.get("/v1/decisions/t1").status_code == 202  # accepted here, not judged yet
    pipeline.judge(json.loads(pipeline.sent[0][1]))
    r = client.get("/v1/decisions/t1")
    assert (r.status_code, r.json()["decision"]) == (200, "approve")
    assert len(pipeline.sent) == 1


def test_a_verdict_whose_alerts_are_not_stored_yet_is_pending_never_approve():
    pipeline = Pipeline(running=False, severity={"t1": "high"})
    client = make(pipeline)
    pipeline.judge(tx("t1"))
    doc, _ = pipeline.stored["t1"]
    pipeline.stored["t1"] = (doc, [])  # the transactions sink has run, the alerts sink not yet
    assert client.post("/v1/decisions?wait_ms=40", json=tx("t1")).json()["decision"] == "pending"
    assert client.get("/v1/decisions/t1").json()["decision"] == "pending"


def test_a_repeated_post_and_a_get_read_the_same_alerts_and_agree():
    pipeline = Pipeline()
    client = make(pipeline)
    assert client.post("/v1/decisions", json=tx("t1")).json()["decision"] == "approve"
    # a late transaction completed a high alert about t1 (`completed_by`): t1's verdict now declines
    pipeline.later["t1"] = [{"_id": "t1:velocity", "alert_id": "t1:velocity", "transaction_id": "t1",
                             "rule": "velocity", "severity": "high", "reason": "5 in 10 min", "mode": "live",
                             "completed_by": "t7"}]
    got = client.get("/v1/decisions/t1").json()
    again = client.post("/v1/decisions", json=tx("t1")).json()
    assert got["decision"] == again["decision"] == "decline"
    assert got == again


def test_a_verdict_whose_alert_was_refused_for_good_is_review_not_pending():
    pipeline = Pipeline(running=False, severity={"t1": "low"})
    client = make(pipeline)
    pipeline.judge(tx("t1"))
    doc, _ = pipeline.stored["t1"]
    # MongoDB refused t1's only alert: the read side found its DLQ record (src/txnmon/jobs/api_reads.py)
    pipeline.stored["t1"] = ({**doc, "alerts_refused": {"reason": "store_refused", "dlq_id": "raw:0:7"}}, [])
    for r in (client.post("/v1/decisions?wait_ms=2000", json=tx("t1")), client.get("/v1/decisions/t1")):
        assert (r.status_code, r.json()["decision"]) == (200, "review")
        assert r.json()["alerts_missing"] == ["t1:high_value_new_country"] and "raw:0:7" in r.json()["note"]


def test_a_resent_transaction_is_not_sent_twice_and_gets_the_same_verdict():
    pipeline = Pipeline(severity={"t1": "medium"})
    client = make(pipeline)
    first = client.post("/v1/decisions", json=tx("t1"))
    again = client.post("/v1/decisions", json=tx("t1"))
    assert first.json() == again.json() and first.json()["decision"] == "review"
    assert len(pipeline.sent) == 1


def test_an_idempotency_key_repeat_returns_the_first_verdict():
    pipeline = Pipeline()
    client = make(pipeline)
    first = client.post("/v1/decisions", json=tx("t1"), headers={"Idempotency-Key": "k"})
    again = client.post("/v1/decisions", json=tx("t1"), headers={"Idempotency-Key": "k"})
    assert (again.status_code, again.json()) == (200, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"


def test_the_same_id_stored_with_other_content_is_a_409():
    pipeline = Pipeline(running=False)
    client = make(pipeline)
    pipeline.judge(tx("t1", amount=99.0))
    r = client.post("/v1/decisions", json=tx("t1"))
    assert r.status_code == 409 and "other content" in r.json()["reason"]


def test_bad_requests_are_4xx_naming_what_is_wrong():
    pipeline = Pipeline()
    client = make(pipeline)
    r = client.post("/v1/decisions", json={"transactions": [tx("a"), tx("b")]})
    assert (r.status_code, r.json()["error"]) == (400, "one_transaction")
    r = client.post("/v1/decisions", json=tx("a", amount="lots"))
    assert r.status_code == 422 and r.json()["rejected"][0]["field"] == "amount"
    for bad in ("abc", "999999"):
        r = client.post(f"/v1/decisions?wait_ms={bad}", json=tx("a"))
        assert r.status_code == 422 and "wait_ms" in r.json()["reason"]
    assert client.post("/v1/decisions", json=tx("a"), headers={"Authorization": ""}).status_code == 401
    assert client.get("/v1/decisions/a", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert pipeline.sent == []


def test_get_of_an_unknown_decision_is_404_and_an_outage_503():
    pipeline = Pipeline()
    client = make(pipeline)
    r = client.get("/v1/decisions/never-sent")
    assert r.status_code == 404 and r.json()["reason"]
    pipeline.down = True
    r = client.get("/v1/decisions/never-sent")
    assert r.status_code == 503 and "10.1.2.3" not in r.text


def test_concurrent_waiting_requests_are_served_by_one_poller_read():
    pipeline = Pipeline(running=False)
    ids = [f"w{i}" for i in range(8)]
    reads_while_all_waited = []

    def read_verdicts(wanted, about):
        if set(ids) <= set(wanted):  # every request is waiting: the processor stores their verdicts now
            reads_while_all_waited.append(list(wanted))
            for _, value, _ in pipeline.sent:
                pipeline.judge(json.loads(value))
        return Pipeline.read_verdicts(pipeline, wanted, about)

    pipeline.read_verdicts = read_verdicts
    # a long deadline: on a loaded machine (CI) the eight requests may take seconds to all be waiting
    app, key = make_app(pipeline, api_decision_poll_ms=20, api_decision_max_wait_ms=60_000)

    async def send_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", timeout=90,
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            return await asyncio.gather(*(client.post("/v1/decisions?wait_ms=60000", json=tx(i)) for i in ids))

    started = time.monotonic()
    # a thread of its own: in the whole suite an earlier test (the browser's sync API) may leave an event
    # loop running in this one, where asyncio.run refuses to start
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answers = pool.submit(asyncio.run, send_all()).result()
    elapsed_ms = (time.monotonic() - started) * 1000
    assert [(r.status_code, r.json()["decision"]) for r in answers] == [(200, "approve")] * len(ids)
    assert len(reads_while_all_waited) == 1  # one read, of every waiting id, answered all eight
    assert sorted(reads_while_all_waited[0]) == sorted(ids)
    # a read per tick (not a busy loop) while the requests arrived; 2 here, a poller per request made 6+
    assert pipeline.reads <= 2 + elapsed_ms // 20


def test_a_store_outage_ends_a_waiting_request_pending():
    pipeline = Pipeline(running=False)
    pipeline.down = True
    client = make(pipeline, api_decision_poll_ms=50)
    r = client.post("/v1/decisions?wait_ms=120", json=tx("t1"))
    assert r.status_code == 202
    assert 1 <= pipeline.reads <= 4  # a read per tick, not a busy loop


def test_an_alert_and_a_case_are_read_with_the_same_keys():
    client = make(Pipeline())
    r = client.get("/v1/alerts/t9:velocity")
    assert r.status_code == 200 and r.json()["alert"]["created_at"].startswith("2026-01-01T12:00")
    assert client.get("/v1/cases/case-1").json()["case"]["status"] == "closed"
    for path in ("/v1/alerts/nope", "/v1/cases/nope"):
        r = client.get(path)
        assert r.status_code == 404 and "nope" in r.json()["reason"]
    assert client.get("/v1/cases/case-1", headers={"Authorization": ""}).status_code == 401
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/decisions", "/v1/alerts/{object_id}", "/v1/cases/{object_id}"} <= set(paths)


def test_each_route_needs_its_scope_and_a_key_from_before_scopes_only_ingests():
    pipeline = Pipeline()
    shop = make(pipeline, scopes=("ingest",))
    assert shop.post("/v1/decisions", json=tx("t1")).status_code == 200
    assert shop.post("/v1/transactions", json=tx("t2")).status_code == 202
    assert shop.get("/v1/decisions/t1").json()["decision"] == "approve"  # the Location of a pending answer
    for path in ("/v1/alerts/t9:velocity", "/v1/cases/case-1"):
        r = shop.get(path)
        assert (r.status_code, r.json()["error"]) == (403, "forbidden") and "'read'" in r.json()["reason"]
    desk = make(pipeline, scopes=("read",))
    assert desk.get("/v1/decisions/t1").json()["decision"] == "approve"
    for path in ("/v1/decisions", "/v1/transactions"):
        r = desk.post(path, json=tx("t3"))
        assert r.status_code == 403 and "'ingest'" in r.json()["reason"]
    legacy = make(pipeline, record_of=lambda record: {k: v for k, v in record.items() if k != "scopes"})
    assert legacy.post("/v1/decisions", json=tx("t4")).status_code == 200
    assert legacy.get("/v1/decisions/t4").status_code == 200
    assert legacy.get("/v1/alerts/t9:velocity").status_code == 403
    assert len(pipeline.sent) == 3


def test_reads_show_no_shadow_alert_no_analyst_note_and_not_who_added_a_list_entry():
    client = make(Pipeline())
    assert client.get("/v1/alerts/t9:trial").status_code == 404  # a rule on trial is not shown
    alert = client.get("/v1/alerts/t9:velocity").json()
    assert alert["disposition"] == {"disposition": "false_positive", "at": "2026-01-01T12:00:00+00:00"}
    assert alert["case"] == {"case_id": "case-1", "status": "closed", "resolution": "legitimate", "severity": "high"}
    listed = client.get("/v1/alerts/t8:listed").json()["alert"]
    assert listed["reason"] == "user_id u1 is on blocked_users (chargebacks)"
    assert listed["explanation"]["entries"][0]["reason"] == "chargebacks" and listed["severity"] == "high"
    case = client.get("/v1/cases/case-1").json()
    assert (case["case"]["status"], case["case"]["resolution"]) == ("closed", "legitimate")
    assert [a["alert_id"] for a in case["alerts"]] == ["t8:listed"]
    for text in (json.dumps(alert), json.dumps(listed), json.dumps(case)):
        assert "bob" not in text and "alice" not in text and "customer" not in text
