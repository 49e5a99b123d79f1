"""Cart abandonment's pure decisions (src/txnmon/core/abandonment.py): the definitions on small cases,
and the property the walk relies on: deciding in any sequence of closed_until steps, each step seeing
only the events before it, gives exactly the carts, outcomes and interventions of one step."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from txnmon.core import abandonment as ab

T0 = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
CONFIG = ab.AbandonConfig(timeout=dt.timedelta(minutes=60), repeat_count=2, repeat_window=dt.timedelta(hours=24),
                          after_failed=dt.timedelta(minutes=15))


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def ev(n: int, cart: str, user: str, minute: float, kind: str = "item_added", product: str = "Mouse",
       **extra: object) -> dict:
    e = {"_id": f"E{n}", "event_type": kind, "user_id": user, "cart_id": cart, "event_time": at(minute), **extra}
    if kind in ("item_added", "item_removed"):
        e.update(product_id=product, quantity=1, price=10.0)
    return e


def tx(n: int, user: str, minute: float, status: str = "success", product: str = "Mouse", method: str = "UPI") -> dict:
    return {"_id": f"T{n}", "user_id": user, "event_time": at(minute), "status": status, "type": "purchase",
            "product": product, "payment_method": method}


def decide(events: list[dict], txs: list[dict], until: dt.datetime, start: dt.datetime | None = None) -> list[dict]:
    seen = [e for e in events if e["event_time"] < until]
    return ab.decide_carts(ab.build_carts(seen, CONFIG.timeout).values(), [t for t in txs if t["event_time"] < until],
                           CONFIG, start=start, until=until)


def test_a_cart_with_a_purchase_by_its_deadline_is_purchased_and_one_without_is_abandoned() -> None:
    events = [ev(1, "K1", "u1", 0, "cart_created"), ev(2, "K1", "u1", 5), ev(3, "K1", "u1", 6, "checkout_started"),
              ev(4, "K2", "u2", 0, "cart_created"), ev(5, "K2", "u2", 10)]
    docs = {d["_id"]: d for d in decide(events, [tx(1, "u1", 7, status="failed")], at(500))}
    assert docs["K1"]["outcome"] == ab.PURCHASED and docs["K1"]["transaction_id"] == "T1"
    assert docs["K2"]["outcome"] == ab.ABANDONED and docs["K2"]["deadline"] == at(70)
    assert docs["K2"]["products"] == ["Mouse"] and docs["K2"]["value"] == 10.0


def test_a_cart_is_decided_only_once_closed_time_is_past_its_deadline() -> None:
    events = [ev(1, "K1", "u1", 0, "cart_created"), ev(2, "K1", "u1", 10)]
    assert decide(events, [], at(70)) == []  # the deadline itself is not closed yet
    assert [d["outcome"] for d in decide(events, [], at(70.01))] == [ab.ABANDONED]
    # a purchase at the deadline still counts: the cart is not abandoned
    assert [d["outcome"] for d in decide(events, [tx(1, "u1", 70)], at(71))] == [ab.PURCHASED]


def test_events_after_a_gap_longer_than_the_timeout_do_not_reopen_a_cart() -> None:
    events = [ev(1, "K1", "u1", 0, "cart_created"), ev(2, "K1", "u1", 10), ev(3, "K1", "u1", 200, product="Pen")]
    [doc] = decide(events, [], at(1000))
    assert doc["last_event_time"] == at(10) and doc["products"] == ["Mouse"]


def test_a_session_names_a_cart_without_a_cart_id() -> None:
    e = ev(1, "", "u1", 0, "cart_created", session_id="S9")
    del e["cart_id"]
    assert ab.cart_key(e) == "session:S9"
    [doc] = decide([e], [], at(100))
    assert doc["_id"] == "session:S9" and doc["session_id"] == "S9" and "cart_id" not in doc


def test_removed_items_leave_the_cart() -> None:
    events = [ev(1, "K1", "u1", 0, product="Pen"), ev(2, "K1", "u1", 1), ev(3, "K1", "u1", 2, "item_removed", "Pen")]
    [doc] = decide(events, [], at(100))
    assert doc["products"] == ["Mouse"] and doc["value"] == 10.0


def test_recovery_is_a_successful_purchase_of_a_cart_product_within_24_hours() -> None:
    [doc] = decide([ev(1, "K1", "u1", 0)], [], at(100))
    assert doc["recovery_due"] == at(24 * 60) and doc["recovered"] is None
    late = [tx(1, "u1", 24 * 60 + 1)]
    failed = [tx(2, "u1", 300, status="failed")]
    other = [tx(3, "u1", 300, product="Pen")]
    good = [tx(4, "u1", 300)]
    assert ab.decide_recovery(doc, good, at(24 * 60))["recovered"] is None  # not due yet
    for txs, expected in ((late, False), (failed, False), (other, False), (good, True)):
        assert ab.decide_recovery(doc, txs, at(24 * 60 + 2))["recovered"] is expected


def test_interventions_repeat_abandoner_and_after_a_failed_payment() -> None:
    events = [ev(1, "K1", "u1", 0), ev(2, "K2", "u1", 300), ev(3, "K3", "u1", 600),
              ev(4, "K4", "u2", 20, "cart_created")]
    txs = [tx(1, "u2", 10, status="failed", method="Card")]
    docs = decide(events, txs, at(2000))
    found = {i["_id"]: i for i in ab.interventions(docs, [], CONFIG)}
    # the second abandonment within 24 h triggers; the third does not trigger again
    assert sorted(found) == ["after_failed_payment:K4", "repeat_abandoner:K2"]
    assert found["repeat_abandoner:K2"]["carts"] == ["K1", "K2"]
    assert found["after_failed_payment:K4"]["failed_transaction"] == "T1"
    assert next(d for d in docs if d["_id"] == "K4")["payment_method"] == "Card"


def test_a_failed_payment_longer_ago_than_the_window_triggers_nothing() -> None:
    docs = decide([ev(1, "K1", "u1", 30)], [tx(1, "u1", 10, status="failed")], at(500))
    assert ab.interventions(docs, [], CONFIG) == []


def test_kpi_rows_count_each_cart_under_each_product() -> None:
    events = [ev(1, "K1", "u1", 0), ev(2, "K1", "u1", 1, product="Pen"), ev(3, "K2", "u2", 5)]
    docs = decide(events, [tx(1, "u2", 20)], at(500))
    rows = {r["_id"]: r for r in ab.kpi_rows(docs)}
    assert rows["2025-10-01T00|Mouse|UPI"] == {"_id": "2025-10-01T00|Mouse|UPI", "hour": T0, "product": "Mouse",
                                               "payment_method": "UPI", "carts": 1, "abandoned": 0, "recovered": 0,
                                               "rate": 0.0}
    assert rows["2025-10-01T00|Mouse|unknown"]["abandoned"] == 1
    assert rows["2025-10-01T00|Pen|unknown"]["rate"] == 1.0


# --- the walk's property ---------------------------------------------------------------------------

USERS = ("u1", "u2", "u3")
cart_events = st.lists(st.tuples(st.integers(0, 5), st.sampled_from(USERS), st.integers(0, 600),
                                 st.sampled_from(["cart_created", "item_added", "item_removed", "checkout_started"])),
                       max_size=25)
purchases = st.lists(st.tuples(st.sampled_from(USERS), st.integers(0, 700), st.sampled_from(["success", "failed"])),
                     max_size=8)
steps = st.lists(st.integers(1, 899), max_size=8)


@given(cart_events, purchases, steps)
def test_any_sequence_of_closed_steps_decides_what_one_step_decides(raw: list, bought: list, cuts: list) -> None:
    # a cart's events are its first user's (the generator's carts have one user each)
    owner: dict[int, str] = {}
    events = [ev(n, f"K{c}", owner.setdefault(c, u), m, kind) for n, (c, u, m, kind) in enumerate(raw)]
    txs = [tx(n, u, m, status=s) for n, (u, m, s) in enumerate(bought)]
    end = at(900)
    whole = decide(events, txs, end)
    whole_interventions = ab.interventions(whole, [], CONFIG)
    stepped: dict[str, dict] = {}
    stepped_interventions: list[dict] = []
    start = None
    for cut in [*sorted(set(cuts)), 900]:
        until = at(cut)
        docs = decide(events, txs, until, start)
        assert all(d["_id"] not in stepped for d in docs)  # each cart decided once
        stepped_interventions += ab.interventions(docs, list(stepped.values()), CONFIG)
        stepped.update({d["_id"]: d for d in docs})
        start = until
    assert stepped == {d["_id"]: d for d in whole}
    assert sorted(stepped_interventions, key=lambda i: i["_id"]) == sorted(whole_interventions, key=lambda i: i["_id"])
