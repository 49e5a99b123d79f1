"""Rules and named lists: list membership fires `listed`, a trusted (user, rule) entry silences."""

from __future__ import annotations

import datetime as dt

from txnmon.core.lists import ListIndex, make_entry
from txnmon.core.rules import Detector
from txnmon.core.rules.rulebook import parse_rules

T0 = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)


def tx(tid: str, user: str, minutes: int, amount: float = 100.0, location: str = "Pune") -> dict:
    return {"_id": tid, "transaction_id": tid, "user_id": user, "amount": amount, "location": location,
            "payment_method": "UPI", "event_time": T0 + dt.timedelta(minutes=minutes)}


def index(*entries: dict) -> ListIndex:
    return ListIndex.build(entries)


def test_without_lists_the_detector_is_unchanged():
    with_lists, plain = Detector(parse_rules("")), Detector(parse_rules(""))
    with_lists.use_lists(index())
    rows = [tx(f"t{i}", "u1", i, 60_000 if i == 2 else 10) for i in range(6)]
    assert [with_lists.observe(r) for r in rows] == [plain.observe(r) for r in rows]


def test_a_listed_location_or_user_fires_listed_until_expiry():
    d = Detector(parse_rules(""))
    d.use_lists(index(make_entry("risky_locations", "Lagos", reason="fraud ring", by="ana", now=T0,
                                 expires_at=T0 + dt.timedelta(minutes=30)),
                      make_entry("blocked_users", "U9", reason="chargebacks", by="raj", now=T0)))
    (hit,) = d.observe(tx("t1", "u1", 1, location="lagos"))
    assert hit.rule == "listed" and "location lagos is on risky_locations (fraud ring, added by ana)" in hit.reason
    assert d.observe(tx("t2", "u1", 31, location="Lagos")) == []  # expired at the event's time
    assert [h.rule for h in d.observe(tx("t3", "u9", 2))] == ["listed"]


def test_trusted_user_silences_one_rule_until_expiry():
    d = Detector(parse_rules(""))
    d.use_lists(index(make_entry("trusted_users", "u1", reason="wholesale", by="ana", now=T0, rule="high_amount",
                                 expires_at=T0 + dt.timedelta(minutes=10))))
    (hit,) = d.judge(tx("t1", "u1", 1, 60_000)).hits
    assert hit.suppressed_by == "list:trusted_users:u1:high_amount"
    assert d.judge(tx("t2", "u2", 1, 60_000)).hits[0].suppressed_by is None  # another user
    assert d.judge(tx("t3", "u1", 10, 60_000)).hits[0].suppressed_by is None  # expired


class _Walked(dict):
    """A list index's mapping that counts the walks over all of it (lookups by key are not walks)."""

    walks = 0

    def values(self):  # type: ignore[override]
        type(self).walks += 1
        return super().values()

    def items(self):  # type: ignore[override]
        type(self).walks += 1
        return super().items()


def test_judging_never_walks_every_list_entry():
    # asked once a transaction, `len` of the index summed every entry: 300 µs a transaction with 10,000
    # entries listed. Judging reads the lists by key only, however long they are.
    built = index(*(make_entry("blocked_users", f"B{i}", reason="chargebacks", by="raj", now=T0) for i in range(500)),
                  make_entry("risky_locations", "Lagos", reason="fraud ring", by="ana", now=T0))
    walked = ListIndex(_Walked(built.members), _Walked(built.trusted))
    assert len(walked) == 501 and walked  # the size is still right, and worked out once
    _Walked.walks = 0
    d = Detector(parse_rules(""))
    d.use_lists(walked)
    hits = [d.observe(tx(f"t{i}", f"u{i % 7}", i, location="Lagos" if i == 5 else "Pune")) for i in range(40)]
    assert [i for i, found in enumerate(hits) if any(h.rule == "listed" for h in found)] == [5]
    assert [h.rule for h in d.observe(tx("t99", "b3", 50))] == ["listed"]  # a blocked user, found by key
    assert _Walked.walks == 0
    assert not ListIndex() and len(ListIndex()) == 0
