"""The walks' lease on the real store: kept alive by its heartbeat however long a step takes, released
at the end, and a holder that vanished without releasing it (SIGKILL) blocks others for one term only."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from txnmon.adapters.mongo import LeasesRepository, MongoStore
from txnmon.errors import RetryableError
from txnmon.jobs.walk_lease import WalkLease, utcnow

pytestmark = pytest.mark.integration
TERM = dt.timedelta(seconds=0.6)


class Busy(RetryableError):
    pass


def test_the_heartbeat_keeps_the_lease_through_a_long_step_and_a_vanished_holder_frees_it_after_a_term(
        settings_factory):
    store = MongoStore(settings_factory(create_topics=False))
    leases = LeasesRepository(store)
    with WalkLease(store, "walk", "test", Busy, term=TERM) as lease:
        time.sleep(4 * TERM.total_seconds())  # one step, four terms long
        now = utcnow()
        assert not leases.acquire("walk", "other", now, now + TERM)  # still held: the heartbeat renewed it
        lease.hold()  # and the walk's own renewal before its next step succeeds
        with pytest.raises(Busy, match="another walk run is in progress"):
            WalkLease(store, "walk", "second", Busy, term=TERM).__enter__()
    now = utcnow()
    assert leases.acquire("walk", "other", now, now + TERM)  # released at the end
    leases.release("walk", "other")

    # a holder killed mid-walk never releases: the next run is refused only until the term has passed
    vanished = WalkLease(store, "walk", "killed", Busy, term=TERM)
    vanished.hold()  # taken, no heartbeat, never released
    with pytest.raises(Busy):
        WalkLease(store, "walk", "next", Busy, term=TERM).__enter__()
    time.sleep(TERM.total_seconds() + 0.2)
    with WalkLease(store, "walk", "next", Busy, term=TERM):
        assert store.db["leases"].find_one({"_id": "walk"})["owner"].startswith("next-")


def test_a_run_on_a_test_clock_starts_no_heartbeat(settings_factory):
    store = MongoStore(settings_factory(create_topics=False))
    fixed = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with WalkLease(store, "walk-fixed", "test", Busy, lambda: fixed, term=TERM) as lease:
        assert lease._beat is None
        renewed = store.db["leases"].find_one({"_id": "walk-fixed"})["renewed_at"]
        assert renewed.replace(tzinfo=None) == fixed.replace(tzinfo=None)


def test_a_walk_whose_lease_was_taken_stops_at_its_next_step_and_leaves_the_new_holder_alone(settings_factory):
    store = MongoStore(settings_factory(create_topics=False))
    later = utcnow() + dt.timedelta(minutes=5)
    with WalkLease(store, "walk-taken", "slow", Busy, term=TERM) as lease:
        # the term lapsed (a stalled host) and another run took the lease
        store.db["leases"].update_one({"_id": "walk-taken"}, {"$set": {"owner": "other", "until": later}})
        time.sleep(TERM.total_seconds())  # the heartbeat finds it taken
        with pytest.raises(Busy):
            lease.hold()
    assert store.db["leases"].find_one({"_id": "walk-taken"})["owner"] == "other"
