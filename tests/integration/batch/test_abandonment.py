"""Cart abandonment on MongoDB: a generated day's carts and transactions, normalised by their contracts
and stored as the `txnmon events` service and the processor store them, walked by `run_abandonment`
with explicit closed_until values. The abandoned carts are the generator's `label=abandoned` carts,
once each; one step or many give the same documents; a crash before the state is saved, then a re-run,
gives them too with no second outbox entry; a day with no abandoned cart raises nothing."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.fixtures.pipeline import TXNMON, env_for
from txnmon.adapters.mongo import MongoStore
from txnmon.core import contract
from txnmon.core.collection_names import (
    ABANDONED_CARTS,
    ABANDONMENT_HOUR,
    ABANDONMENT_STATE,
    CART_EVENTS,
    CART_OUTCOMES,
    INTERVENTIONS,
    NOTIFICATIONS,
    TRANSACTIONS,
)
from txnmon.core.event_contracts import event_kind, normalise_cart_event
from txnmon.jobs import replay
from txnmon.jobs.abandonment import run_abandonment
from txnmon.synthetic.events import generate_events, write_events
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

pytestmark = [pytest.mark.integration]

DAY = dt.date(2025, 10, 1)
START = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
END = START + dt.timedelta(days=2, hours=6)  # every cart and every recovery decided
UTC = ZoneInfo("UTC")
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
OUTPUTS = (ABANDONED_CARTS, CART_OUTCOMES, INTERVENTIONS, ABANDONMENT_HOUR)
ROUTES = """
version: "1"
destinations:
  crm: {type: webhook, url_env: TXNMON_NOTIFY_CRM_URL, secret_env: TXNMON_NOTIFY_CRM_SECRET}
routes:
  - {name: carts, events: [intervention], to: [crm]}
"""


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """A small generated day: its transactions and cart events, normalised as stored."""
    folder = tmp_path_factory.mktemp("day")
    spec = GeneratorSpec(rows=400, users=60, seed=11, start=DAY)
    df = generate(spec)
    write_csv(df, folder / "tx.csv")
    paths = write_events(generate_events(df, spec, ["carts"]), folder)
    txs = [contract.normalise(r, zone=UTC, now=NOW) for r in replay.read_rows(folder / "tx.csv")]
    carts = [normalise_cart_event(r, zone=UTC, now=NOW) for r in replay.read_rows(paths["carts"], event_kind("carts"))]
    return {"transactions": txs, "carts": carts}


def stored(settings_factory: Any, tmp_path: Path, day: dict, carts: list | None = None) -> Any:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    settings = settings_factory(create_topics=False, notify_routes_file=routes)
    store = MongoStore(settings)
    store.ensure_indexes()
    store.insert_missing(TRANSACTIONS, day["transactions"])
    store.insert_missing(CART_EVENTS, day["carts"] if carts is None else carts)
    return settings


def walk(settings: Any, steps: list[dt.datetime], store: MongoStore | None = None, **kw: Any) -> None:
    for until in steps:
        run_abandonment(store or MongoStore(settings), settings, closed_until=until, **kw)


def outputs(settings: Any) -> dict[str, dict[str, dict]]:
    store = MongoStore(settings)
    out = {name: {d["_id"]: d for d in store.find(name)} for name in OUTPUTS}
    out[NOTIFICATIONS] = {d["_id"]: {k: d[k] for k in ("event_id", "kind", "destination", "event", "status")}
                          for d in store.find(NOTIFICATIONS)}
    return out


def labelled(day: dict, label: str, scenario: str | None = None) -> set[str]:
    return {e["cart_id"] for e in day["carts"]
            if e["label"] == label and (scenario is None or e.get("scenario") == scenario)}


def every(minutes: int) -> list[dt.datetime]:
    steps, t = [], START
    while t < END:
        t += dt.timedelta(minutes=minutes)
        steps.append(min(t, END))
    return steps


def test_the_abandoned_carts_are_the_generators_once_each_whatever_the_steps(settings_factory, tmp_path, day):
    one = stored(settings_factory, tmp_path, day)
    walk(one, [END])
    many = stored(settings_factory, tmp_path, day)
    walk(many, every(173))
    found = outputs(one)
    assert found == outputs(many)  # identical documents, step by step or at once

    abandoned = found[ABANDONED_CARTS]
    assert set(abandoned) == labelled(day, "abandoned") and len(abandoned) > 50
    assert all(d["recovered"] is not None for d in abandoned.values())  # every recovery decided by END
    outcomes = found[CART_OUTCOMES]
    assert {k for k, d in outcomes.items() if d["outcome"] == "purchased"} == labelled(day, "purchased")

    by_trigger: dict[str, set[str]] = {}
    for i in found[INTERVENTIONS].values():
        by_trigger.setdefault(i["trigger"], set()).add(i["cart"])
    assert by_trigger["after_failed_payment"] == labelled(day, "abandoned", "after_failed_payment")
    assert by_trigger["repeat_abandoner"]  # the generator's abandoners come from a small pool
    assert set(found[NOTIFICATIONS]) == {f"{i}|crm" for i in found[INTERVENTIONS]}

    # each decided cart counted once under each of its products (an empty one under "none")
    kpis = list(found[ABANDONMENT_HOUR].values())
    weight = {k: max(1, len(d["products"])) for k, d in outcomes.items()}
    assert sum(r["carts"] for r in kpis) == sum(weight.values())
    assert sum(r["abandoned"] for r in kpis) == sum(weight[k] for k in abandoned)
    assert sum(r["recovered"] for r in kpis) == sum(weight[k] for k, d in abandoned.items() if d["recovered"])


class CrashBeforeTheState(MongoStore):
    """A store that dies where a crash hurts most: every output written, the state not yet saved."""

    def replace_document(self, collection: str, doc: Any) -> None:
        if collection == ABANDONMENT_STATE:
            raise RuntimeError("crash before the state is saved")
        super().replace_document(collection, doc)


def test_a_crash_before_the_state_is_saved_re_walks_to_the_same_documents_and_one_outbox_entry(
        settings_factory, tmp_path, day):
    steps = [START + dt.timedelta(hours=h) for h in (3, 20, 60)]
    clean = stored(settings_factory, tmp_path, day)
    walk(clean, steps)
    crashed = stored(settings_factory, tmp_path, day)
    walk(crashed, steps[:1])
    first_time = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(RuntimeError, match="crash"):
        walk(crashed, steps[1:2], store=CrashBeforeTheState(crashed), clock=lambda: first_time)
    queued_in_the_crash = {d["_id"] for d in MongoStore(crashed).find(NOTIFICATIONS, {"created_at": first_time})}
    assert queued_in_the_crash  # the crashed run had queued interventions before it died
    walk(crashed, steps[1:])
    assert outputs(crashed) == outputs(clean)
    again = MongoStore(crashed).find(NOTIFICATIONS, {"_id": {"$in": sorted(queued_in_the_crash)}})
    # kept as first queued, not queued a second time
    assert len(again) == len(queued_in_the_crash) and all(d["created_at"] == first_time for d in again)


def test_a_day_without_abandoned_carts_raises_nothing(settings_factory, tmp_path, day):
    purchased = [e for e in day["carts"] if e["label"] == "purchased"]
    settings = stored(settings_factory, tmp_path, day, carts=purchased)
    walk(settings, [START + dt.timedelta(hours=12)])
    done = subprocess.run([TXNMON, "abandonment", "run", "--until", END.isoformat(), "--json"], env=env_for(settings),
                          capture_output=True, text=True, timeout=120, check=True)
    run = json.loads(done.stdout)
    assert run["decided"] > 0 and run["abandoned"] == 0 and run["interventions"] == []
    found = outputs(settings)
    assert found[ABANDONED_CARTS] == {} and found[INTERVENTIONS] == {} and found[NOTIFICATIONS] == {}
    assert len(found[CART_OUTCOMES]) == len({e["cart_id"] for e in purchased})
    kpis = found[ABANDONMENT_HOUR].values()
    assert kpis and all(r["abandoned"] == 0 and r["rate"] == 0 for r in kpis)


def test_closed_until_is_capped_at_the_wall_clock_and_a_naive_one_is_utc(settings_factory, tmp_path, day, monkeypatch):
    settings = stored(settings_factory, tmp_path, day)
    now = START + dt.timedelta(hours=12)
    run = run_abandonment(MongoStore(settings), settings, closed_until=END, clock=lambda: now)
    assert run.closed_until == now  # a future --until decides nothing past the clock
    store = MongoStore(settings)
    assert store.find_one(ABANDONMENT_STATE, {"_id": "abandonment"})["decided_until"] == now
    assert all(d["deadline"] < now for d in store.find(CART_OUTCOMES))

    monkeypatch.setenv("TZ", "America/New_York")  # a naive time must not be read as local time
    time.tzset()
    try:
        naive = (now + dt.timedelta(hours=1)).replace(tzinfo=None)
        run = run_abandonment(MongoStore(settings), settings, closed_until=naive)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert run.closed_until == now + dt.timedelta(hours=1)


class Recording(MongoStore):
    """A store that notes the longest $in list it was asked for and every state it saved."""

    longest_in = 0
    saved: list[dt.datetime]

    def find(self, collection: str, query: Any = None, **kw: Any) -> Any:
        def ins(q: Any) -> list[int]:  # id lists only: the hours of a step are bounded by the step
            if isinstance(q, dict):
                return [len(v["$in"]) for k, v in q.items() if k != "hour" and isinstance(v, dict) and "$in" in v] + [
                    n for v in q.values() for n in ins(v)]
            return [n for v in q for n in ins(v)] if isinstance(q, list) else []
        self.longest_in = max([self.longest_in, *ins(query or {})])
        return super().find(collection, query, **kw)

    def replace_document(self, collection: str, doc: Any) -> None:
        if collection == ABANDONMENT_STATE:
            self.saved.append(doc["decided_until"])
        super().replace_document(collection, doc)


def test_a_first_run_walks_a_day_at_a_time_renewing_the_lease_with_bounded_id_lists(
        settings_factory, tmp_path, day, monkeypatch):
    from txnmon.jobs import abandonment as job

    monkeypatch.setattr(job, "IN_CHUNK", 7)
    settings = stored(settings_factory, tmp_path, day)
    store = Recording(settings)
    store.saved = []
    ticks = iter(NOW + dt.timedelta(minutes=i) for i in range(10_000))
    run = run_abandonment(store, settings, closed_until=END, clock=lambda: next(ticks))
    assert len(store.saved) >= 3 and store.saved[-1] == END  # saved after each step, not once at the end
    first_deadline = min(e["event_time"] for e in day["carts"]) + dt.timedelta(minutes=settings.abandon_timeout_minutes)
    assert store.saved[0] == first_deadline + job.STEP  # a day past the first deadline, not all at once
    assert 0 < store.longest_in <= 7
    lease = MongoStore(settings).db["leases"].find_one({"_id": "abandonment"})
    assert lease["renewed_at"] > NOW  # renewed after the first step
    # the steps and the chunks change nothing
    assert set(outputs(settings)[ABANDONED_CARTS]) == labelled(day, "abandoned") and run.abandoned > 50


def test_a_cart_event_stored_late_does_not_decide_a_decided_cart_again(settings_factory, tmp_path, day):
    from txnmon.core.abandonment import build_carts
    from txnmon.jobs.abandonment import abandon_config

    settings = stored(settings_factory, tmp_path, day)
    timeout = abandon_config(settings).timeout
    carts = build_carts(day["carts"], timeout)
    key = sorted(labelled(day, "abandoned"))[0]
    cart = carts[key]
    walk(settings, [cart.end + timeout + dt.timedelta(seconds=1)])  # just past its deadline: decided
    store = MongoStore(settings)
    before = store.find_one(CART_OUTCOMES, {"_id": key})
    assert before["outcome"] == "abandoned"

    # stored late: an event of the cart within the timeout after its end, then the user buys it
    last = max((e for e in day["carts"] if e.get("cart_id") == key), key=lambda e: e["event_time"])
    late_at = cart.end + timeout - dt.timedelta(seconds=1)
    store.insert_missing(CART_EVENTS, [{**last, "_id": f"late-{key}", "event_time": late_at}])
    tx = next(t for t in day["transactions"] if t["user_id"] == cart.user_id)
    store.insert_missing(TRANSACTIONS, [{**tx, "_id": f"late-tx-{key}", "event_time": late_at,
                                         "transaction_id": f"late-tx-{key}", "type": "purchase",
                                         "status": "success"}])
    walk(settings, [late_at + timeout + dt.timedelta(minutes=1)])  # past the deadline the late event would give
    after = store.find_one(CART_OUTCOMES, {"_id": key})
    assert after["last_event_time"] == before["last_event_time"] and after["outcome"] == "abandoned"
    walk(settings, [END])
    after = store.find_one(CART_OUTCOMES, {"_id": key})
    assert after["last_event_time"] == before["last_event_time"] and after["outcome"] == "abandoned"
    assert store.find_one(ABANDONED_CARTS, {"_id": key})["recovered"] is not None  # its recovery still decided
