"""Judging a batch of cart, stock and review events, their stored copies compared, closed event time."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from txnmon.core.collection_names import CART_EVENTS, REVIEWS
from txnmon.core.event_batch import closed_until, judge_batch, partition_mark, same_event
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


@given(st.lists(st.lists(times, min_size=1, max_size=12), min_size=1, max_size=6), st.one_of(st.none(), times),
       st.integers(0, 3600))
def test_closed_time_never_passes_a_partition_or_the_processor(partitions, processor, lateness_s):
    lateness = dt.timedelta(seconds=lateness_s)
    until = closed_until([partition_mark(p) for p in partitions], processor, lateness)
    if processor is None:
        assert until is None  # a transaction not yet stored could still change a verdict
        return
    assert until is not None
    assert until <= processor - lateness
    assert all(until <= min(p) - lateness for p in partitions)
    assert until == min([processor, *(min(p) for p in partitions)]) - lateness


def test_an_idle_input_closes_everything_seen():
    newest = dt.datetime(2025, 9, 30, 12, tzinfo=dt.UTC)
    assert closed_until([], None, dt.timedelta(minutes=5), idle_newest=newest) == newest
    assert closed_until([], newest, dt.timedelta(minutes=5)) is None
