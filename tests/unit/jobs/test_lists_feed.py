"""ListsFeed: the processor's between-batches reload of the lists, with a list-in store double."""

from __future__ import annotations

import datetime as dt

from txnmon.adapters.mongo import UpsertResult
from txnmon.core.collection_names import LIST_CHANGES, LIST_ENTRIES
from txnmon.core.lists import make_entry
from txnmon.core.rules import Detector
from txnmon.core.rules.rulebook import parse_rules
from txnmon.errors import StoreRefused, StoreUnavailable
from txnmon.jobs.lists import ListsFeed

T0 = dt.datetime.now(dt.UTC)


class Mark:
    """The change mark's document, as ListsRepository reads it; `seq` moved by the test as a change would."""

    def __init__(self, store: EntriesStore) -> None:
        self.store, self.seq, self.reads = store, 0, 0

    def find_one(self, query):
        if self.store.down:
            raise StoreUnavailable("down")
        self.reads += 1
        return {"_id": "lists", "seq": self.seq} if self.seq else None


class EntriesStore:
    """Answers the live entries query (ListsRepository's) from a list; `down` makes it an outage;
    records rule versions."""

    def __init__(self, entries: list[dict]) -> None:
        self.entries = entries
        self.down = False
        self.loads = 0
        self.inserted: list[dict] = []
        self.mark = Mark(self)

    @property
    def db(self):
        return {LIST_ENTRIES: self, LIST_CHANGES: self.mark}

    def change(self, entry: dict) -> None:
        self.entries.append(entry)
        self.mark.seq += 1

    def find(self, query):
        if self.down == "refused":
            raise StoreRefused("not authorized on txnmon to execute command find")
        if self.down:
            raise StoreUnavailable("down")
        self.loads += 1
        return list(self.entries)

    def insert_missing(self, collection, docs):
        self.inserted += [{"collection": collection, **d} for d in docs]
        return UpsertResult(len(docs), 0)


def _feed(tmp_path):
    """A detector, a store holding one entry, a test clock and the feed between them (every 2 s)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: x\n")
    detector = Detector(parse_rules(rules.read_text(), str(rules)))
    store = EntriesStore([make_entry("blocked_users", "u1", reason="r", by="ana", now=T0)])
    clock = [100.0]
    feed = ListsFeed(store, detector, rules, every_s=2.0, clock=lambda: clock[0])
    return detector, store, clock, feed


def test_reloads_on_its_period_and_keeps_the_last_lists_through_an_outage(tmp_path):
    detector, store, clock, feed = _feed(tmp_path)
    feed.maybe_reload()
    assert store.loads == 1 and len(detector.lists) == 1
    # the rules version is stored with its text, and audited once
    assert [d["collection"] for d in store.inserted] == ["rule_versions", "audit_log"]
    clock[0] += 1.0
    feed.maybe_reload()
    assert store.loads == 1  # not yet
    store.change(make_entry("risky_locations", "Lagos", reason="r", by="ana", now=T0))
    clock[0] += 1.5
    feed.maybe_reload()
    assert store.loads == 2 and len(detector.lists) == 2
    store.down = True
    clock[0] += 5
    feed.maybe_reload()  # logged, not raised
    assert len(detector.lists) == 2
    store.down = "refused"
    clock[0] += 5
    feed.maybe_reload()
    assert len(detector.lists) == 2
    assert len(store.inserted) == 2  # the version was recorded once


def test_a_trusted_users_entry_may_name_a_typology_of_the_rules_file_in_use(tmp_path):
    from txnmon.jobs.lists import known_rule_names
    from txnmon.settings import DEFAULT_RULES_FILE

    custom = tmp_path / "rules.yaml"
    custom.write_text("typologies:\n  takeover: {signals: {new_location: 50, new_payment_method: 50}, "
                      "thresholds: {high: 100}}\n")
    assert "takeover" in known_rule_names(custom) and "velocity" in known_rule_names(custom)
    assert {"account_takeover", "card_testing", "refund_abuse"} <= set(known_rule_names(DEFAULT_RULES_FILE))
    broken = tmp_path / "broken.yaml"
    broken.write_text("typologies: [")
    assert "takeover" not in known_rule_names(broken) and "velocity" in known_rule_names(broken)


class QueryingStore(EntriesStore):
    """Answers `find` by the query's equality and `$gt`/`$or` terms, as MongoDB would."""

    def find(self, query):
        def holds(doc, q):
            for key, want in q.items():
                if key == "$or":
                    if not any(holds(doc, alt) for alt in want):
                        return False
                elif isinstance(want, dict):
                    value = doc.get(key)
                    if "$gt" in want and not (value is not None and value > want["$gt"]):
                        return False
                elif doc.get(key) != want:
                    return False
            return True

        self.loads += 1
        return [e for e in self.entries if holds(e, query)]


def test_a_backfill_is_judged_with_the_entries_in_force_at_each_event_time(tmp_path):
    """A block that expired yesterday (wall clock) still covers events of last week, and a trust that
    expired too still silences its rule then: a lagging processor or a backfill gives the verdicts of
    a processor that ran on time (docs/analysts.md, "expiry goes by event time")."""
    from txnmon.jobs.lists import live_lists

    now = dt.datetime.now(dt.UTC)
    week_ago = now - dt.timedelta(days=7)
    added = week_ago - dt.timedelta(days=1)
    store = QueryingStore([
        make_entry("blocked_users", "U9", reason="chargebacks", by="ana", now=added,
                   expires_at=now - dt.timedelta(days=1)),
        make_entry("trusted_users", "U7", reason="payroll agent", by="ana", now=added, rule="high_amount",
                   expires_at=now - dt.timedelta(days=1)),
        make_entry("risky_locations", "Lagos", reason="ring", by="raj", now=added,
                   valid_from=now - dt.timedelta(days=2)),
    ])
    detector = Detector(parse_rules(""))
    detector.use_lists(live_lists(store))

    def tx(tid: str, user: str, at: dt.datetime, amount: float = 10.0, location: str = "Pune") -> dict:
        return {"_id": tid, "transaction_id": tid, "user_id": user, "amount": amount, "location": location,
                "payment_method": "UPI", "event_time": at}

    assert [h.rule for h in detector.observe(tx("b1", "u9", week_ago))] == ["listed"]
    [silenced] = detector.observe(tx("b2", "u7", week_ago, amount=60_000))
    assert silenced.suppressed_by == "list:trusted_users:u7:high_amount"
    # the same users today: both entries have expired by then
    assert detector.observe(tx("b3", "u9", now)) == []
    [raised] = detector.observe(tx("b4", "u7", now, amount=60_000))
    assert raised.rule == "high_amount" and not raised.suppressed_by
    # an entry applies from its valid_from on, not before
    assert detector.observe(tx("b5", "u1", week_ago, location="Lagos")) == []
    assert [h.rule for h in detector.observe(tx("b6", "u2", now, location="Lagos"))] == ["listed"]


def test_the_entries_are_read_again_only_when_their_change_mark_moved(tmp_path):
    # reading every entry every 2 s held a batch up 56-86 ms with 10,000 entries (issue 29)
    detector, store, clock, feed = _feed(tmp_path)
    feed.maybe_reload()
    for _ in range(10):  # a minute without a change: the mark is read, the entries are not
        clock[0] += 6
        feed.maybe_reload()
    assert store.loads == 1 and store.mark.reads == 11
    store.change(make_entry("risky_locations", "Lagos", reason="r", by="ana", now=T0))
    clock[0] += 2
    feed.maybe_reload()
    assert store.loads == 2 and len(detector.lists) == 2
    # an entry written around the repository (no mark) is read within FULL_RELOAD_S all the same
    store.entries.append(make_entry("blocked_users", "u2", reason="r", by="ana", now=T0))
    clock[0] += 2
    feed.maybe_reload()
    assert len(detector.lists) == 2
    clock[0] += ListsFeed.FULL_RELOAD_S
    feed.maybe_reload()
    assert store.loads == 3 and len(detector.lists) == 3
    # an outage while reading the mark keeps the lists
    store.down = True
    store.change(make_entry("blocked_users", "u3", reason="r", by="ana", now=T0))
    clock[0] += 2
    feed.maybe_reload()
    assert len(detector.lists) == 3
    store.down = False
    clock[0] += 2
    feed.maybe_reload()
    assert store.loads == 4 and len(detector.lists) == 4
