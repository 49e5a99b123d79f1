"""Judging a batch of cart, stock and review events, their stored copies compared, closed event time."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from txnmon.core.collection_names import CART_EVENTS, REVIEWS
from txnmon.core.event_batch import PartitionView, closed_until, judge_batch, partition_views, same_event
from txnmon.core.records import SourceRecord

NOW = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
KINDS = {"carts.raw": "carts", "inventory.raw": "stock", "reviews.raw": "reviews"}
UTC = ZoneInfo("UTC")


def rec(topic: str, offset: int, value: object, partition: int = 0) -> SourceRecord:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return SourceRecord(topic, partition, offset, None, raw, 0)


def judge(records):
    return judge_batch(records, KINDS, zone=UTC, now=NOW, max_bytes=64 * 1024, dlq_max_bytes=256 * 1024)


def test_a_batch_sorts_events_by_collection_and_keeps_every_partitions_offset():
    batch = judge([rec("carts.raw", 4, {"event_id": "E1", "event_type": "Item_Added", "user_id": "U1",
                                        "cart_id": "C1", "product_id": "P", "quantity": 2, "price": "10.5",
                                        "timestamp": "2025-09-30T10:00:00+05:30"}),
                   rec("reviews.raw", 9, {"review_id": 7.0, "user_id": "U", "product_id": "P", "rating": "4",
                                          "text": " ok ", "timestamp": "2025-09-30T10:00:00Z"}),
                   rec("reviews.raw", 10, [1, 2])])
    [cart] = batch.events[CART_EVENTS]
    assert (cart["_id"], cart["event_type"], cart["price"]) == ("E1", "item_added", 10.5)
    assert cart["event_time"] == dt.datetime(2025, 9, 30, 4, 30, tzinfo=dt.UTC)
    assert [r["_id"] for r in batch.events[REVIEWS]] == ["7"]
    assert [(d["_id"], d["reason"]) for d in batch.rejected] == [("reviews.raw:0:10", "not_object")]
    assert batch.offsets == {("carts.raw", 0): 5, ("reviews.raw", 0): 11}
    assert batch.times[("reviews.raw", 0)] == [dt.datetime(2025, 9, 30, 10, 0, tzinfo=dt.UTC)]


def test_a_stored_copy_read_back_is_the_same_event_and_other_content_is_not():
    event = judge([rec("carts.raw", 0, {"event_id": "E1", "event_type": "cart_created", "user_id": "U1",
                                        "cart_id": "C1", "timestamp": "2025-09-30T10:00:00.123456Z"})]
                  ).events[CART_EVENTS][0]
    # what MongoDB gives back: milliseconds, a naive or aware UTC datetime
    read_back = {**event, "event_time": event["event_time"].replace(microsecond=123000, tzinfo=None)}
    assert same_event(event, read_back)
    assert not same_event(event, {**read_back, "user_id": "U2"})
    assert not same_event(event, {k: v for k, v in read_back.items() if k != "cart_id"})


times = st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2030, 1, 1), timezones=st.just(dt.UTC))


views = st.builds(PartitionView, st.one_of(st.none(), times), st.integers(0, 3), st.booleans())


@given(st.lists(views, max_size=6), st.one_of(st.none(), times), st.integers(0, 3600))
def test_closed_time_never_passes_a_waiting_partition_the_most_advanced_mark_or_the_processor(parts, processor,
                                                                                              lateness_s):
    lateness = dt.timedelta(seconds=lateness_s)
    until = closed_until(parts, processor, lateness)
    marks = [v.mark for v in parts if v.mark is not None]
    if processor is None or not marks or any(v.lag and v.mark is None for v in parts):
        assert until is None  # a sale not stored yet, or a backlog older than anything known
        return
    assert until is not None
    assert until <= processor and until <= max(marks)  # a robust mark, never a raw event time
    waiting = [v for v in parts if v.mark is not None and (v.lag or not v.quiet)]
    assert all(until <= v.mark - lateness for v in waiting)
    if waiting:
        assert until == min([processor, *(v.mark for v in waiting)]) - lateness
    if any(v.lag or not v.quiet for v in parts):
        assert until <= processor - lateness  # only a whole idle group closes without lateness


def at(hour: float) -> dt.datetime:
    return dt.datetime(2025, 9, 30, tzinfo=dt.UTC) + dt.timedelta(hours=hour)


def test_an_idle_group_closes_to_the_most_advanced_mark_not_to_an_event_dated_a_day_ahead():
    now, quiet = at(12), dt.timedelta(seconds=60)
    # a stock partition's 10 newest: 9 around 10:00 and one dated 23 h ahead; carts up to 11:00
    stock = {0: {"newest": [at(10 + i / 60) for i in range(9)] + [at(33)], "next_offset": 10, "stored_at": at(11)}}
    carts = {0: {"newest": [at(11)] * 10, "next_offset": 40, "stored_at": at(11).replace(tzinfo=None)}}
    parts = partition_views(stock, {0: 10}, now=now, quiet_after=quiet) + partition_views(carts, {0: 40}, now=now,
                                                                                           quiet_after=quiet)
    assert closed_until(parts, at(12), dt.timedelta(minutes=5)) == at(11)  # not 23 h ahead
    assert closed_until(parts, at(10.5), dt.timedelta(minutes=5)) == at(10.5)  # never past the processor
    assert closed_until(parts, None, dt.timedelta(minutes=5)) is None
    # a record still waiting on a partition: lateness applies again, from the slowest waiting partition
    waiting = partition_views(stock, {0: 11}, now=now, quiet_after=quiet) + parts[1:]
    assert closed_until(waiting, at(12), dt.timedelta(minutes=5)) == at(10) - dt.timedelta(minutes=5)


def test_a_drained_quiet_partition_stops_holding_time_back_and_one_with_a_backlog_and_no_mark_holds_it():
    now, quiet, lateness = at(12), dt.timedelta(seconds=60), dt.timedelta(minutes=5)
    sparse = {0: {"newest": [at(3)] * 10, "next_offset": 10, "stored_at": at(4)}}
    busy = {0: {"newest": [at(11.9)] * 10, "next_offset": 99, "stored_at": now}}
    parts = (partition_views(sparse, {0: 10}, now=now, quiet_after=quiet)
             + partition_views(busy, {0: 100}, now=now, quiet_after=quiet))
    assert [(v.lag, v.quiet) for v in parts] == [(0, True), (1, False)]
    assert closed_until(parts, at(12), lateness) == at(11.9) - lateness  # the sparse one left out
    # a partition never stored with records on the broker (a first deployment's backlog): nothing closed
    backlog = partition_views({}, {0: 0, 1: 500}, now=now, quiet_after=quiet)
    assert [v.lag for v in backlog] == [0, 500]
    assert closed_until(parts + backlog, at(12), lateness) is None
