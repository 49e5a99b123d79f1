"""Where a record first arrived, as the code before #29 found it (a copy with new fields, from a dict of headers)."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from txnmon.core.identity import SOURCE_HEADERS, origin_of, origin_position
from txnmon.core.records import SourceRecord


def old_origin_of(record: SourceRecord) -> SourceRecord:
    if not record.headers:
        return record
    found = {k: v for k, v in record.headers if k in SOURCE_HEADERS}
    if len(found) != len(SOURCE_HEADERS):
        return record
    try:
        return record._replace(topic=found["txnmon.source.topic"].decode(),
                       partition=int(found["txnmon.source.partition"]), offset=int(found["txnmon.source.offset"]))
    except (ValueError, UnicodeDecodeError):
        return record


names = st.sampled_from([*SOURCE_HEADERS, "other", "txnmon.reason"])
values = st.sampled_from([b"raw", b"3", b"41", b"-2", b" 7", b"1_0", b"x", b"\xff", b"t\xc3\xa9"])
routed = st.builds(lambda before, t, p, o: (*before, (SOURCE_HEADERS[0], t), (SOURCE_HEADERS[1], p),
                                            (SOURCE_HEADERS[2], o)),
                   st.lists(st.tuples(names, values), max_size=4), values, values, values)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(st.tuples(names, values), max_size=7).map(tuple), routed))
@example(((SOURCE_HEADERS[0], b"a"), (SOURCE_HEADERS[1], b"1"), (SOURCE_HEADERS[2], b"2"), (SOURCE_HEADERS[0], b"b")))
@example(((SOURCE_HEADERS[0], b"a"), (SOURCE_HEADERS[1], b"1"), (SOURCE_HEADERS[2], b"2")))
def test_the_origin_is_the_one_the_old_code_found(headers: tuple[tuple[str, bytes], ...]) -> None:
    record = SourceRecord("by_user", 1, 9, b"k", b"{}", 5, headers)
    old = old_origin_of(record)
    assert origin_of(record) == old
    position = origin_position(record)
    assert (position is None) == (old is record)
    assert position is None or position == (old.topic, old.partition, old.offset)


def test_a_routed_record_names_its_raw_position_and_keeps_the_rest() -> None:
    headers = (("trace", b"x"), (SOURCE_HEADERS[0], b"raw"), (SOURCE_HEADERS[1], b"2"), (SOURCE_HEADERS[2], b"41"))
    record = SourceRecord("by_user", 1, 9, b"k", b"{}", 5, headers)
    assert origin_position(record) == ("raw", 2, 41)
    assert origin_of(record) == SourceRecord("raw", 2, 41, b"k", b"{}", 5, headers)
