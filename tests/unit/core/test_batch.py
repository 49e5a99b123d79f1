"""process_batch: a polled batch in, documents and messages out, no I/O."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as budget
from hypothesis import strategies as st

from tests.unit.core.test_identity import old_origin_of
from txnmon.core import batch as batch_module
from txnmon.core import fastjson
from txnmon.core.batch import BatchConfig, _judge, process_batch
from txnmon.core.contract import parse_transaction
from txnmon.core.enrichment import value_category
from txnmon.core.identity import content_fingerprint, fingerprint_of, origin_of
from txnmon.core.records import SourceRecord
from txnmon.core.rules import Detector, load_rules, risk_score
from txnmon.core.scoring import ModelScore
from txnmon.core.watermark import DEFAULT_K, Watermarks
from txnmon.settings import load_settings

NOW = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def settings():
    return load_settings(metrics_port=0)


@pytest.fixture
def config(settings):
    return BatchConfig.from_settings(settings)


def record(offset: int, value: object, partition: int = 0, key: bytes | None = b"U1") -> SourceRecord:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return SourceRecord("transactions.raw", partition, offset, key, raw, 0)


def row(tid: str, minute: int, amount: float = 100, user: str = "U1") -> dict:
    return {"transaction_id": tid, "user_id": user, "amount": amount, "payment_method": "UPI",
            "location": "Mumbai", "timestamp": f"2025-09-30T10:{minute:02d}:00Z"}


def no_history(users):
    return {}


def test_valid_records_become_enriched_documents_and_messages(settings, config):
    detector = Detector(load_rules(settings.rules_file))
    result = process_batch([record(0, row("T1", 0, 60_000)), record(1, row("T2", 1, 6_000))], detector, config,
                           now=NOW, load_state=no_history)
    big, medium = result.transactions
    assert big["_id"] == "T1" and big["value_category"] == "High" and big["alert_flag"] is True
    assert big["alert_reasons"] == ["high_amount"] and big["risk_score"] == 60
    assert big["processed_time"] == NOW and big["rules_version"] == detector.version
    assert big["source"] == {"topic": "transactions.raw", "partition": 0, "offset": 0}
    assert medium["value_category"] == "Medium" and medium["alert_flag"] is False
    assert [a["_id"] for a in result.alerts] == ["T1:high_amount"]
    assert result.alerts[0]["severity"] == "high" and "56" not in result.alerts[0]["reason"]
    key, value, _ = result.enriched[0]
    assert key == b"U1"
    assert json.loads(value)["event_time"] == "2025-09-30T10:00:00Z"
    assert result.next_offsets == {0: 2}


def test_rejected_records_keep_their_bytes_and_carry_reason_and_source(settings, config):
    detector = Detector(load_rules(settings.rules_file))
    raw = b'{"transaction_id": "T9", "amount": "lots"}'
    result = process_batch([record(5, raw, partition=2, key=b"k")], detector, config, now=NOW,
                           load_state=no_history)
    assert result.transactions == [] and result.enriched == []
    key, value, headers = result.dlq[0]
    assert (key, value) == (b"k", raw)
    h = dict(headers)
    assert h["txnmon.reason"] == b"missing_field"
    assert (h["txnmon.source.topic"], h["txnmon.source.partition"], h["txnmon.source.offset"]) == (
        b"transactions.raw", b"2", b"5")
    assert result.rejected_by_reason == {"missing_field": 1}
    assert result.next_offsets == {2: 6}


def test_history_is_loaded_once_for_unknown_users(settings, config):
    # the single-condition velocity rule (built-in settings) as the probe: it counts rows, so the
    # two loaded events are what makes T2 the fourth (the shipped velocity typology counts checkouts)
    from txnmon.core.rules import parse_rules
    detector = Detector(parse_rules("", "built-in rules"))
    calls = []

    def loader(users):
        calls.append(users)
        stored = [[dt.datetime(2025, 9, 30, 9, 58 + i, tzinfo=dt.UTC), f"old{i}", "Mumbai", 1.0, "purchase",
                   "success"] for i in range(2)]
        return {"U1": {"events": stored, "raised": {}}}

    first = process_batch([record(0, row("T1", 0)), record(1, row("T2", 0))], detector, config, now=NOW,
                          load_state=loader)
    assert calls == [{"U1"}]
    # two stored + T1 + T2 = 4 within 10 minutes: T2 trips velocity only because history was loaded
    assert [a["_id"] for a in first.alerts] == ["T2:velocity"]
    later = process_batch([record(2, row("T3", 30))], detector, config, now=NOW, load_state=loader)
    assert len(calls) == 1
    # the user's history holds every event within the rules' horizon
    assert later.consumed == 1
    assert [e.transaction_id for e in detector.state.get("U1").events] == ["old0", "old1", "T1", "T2", "T3"]


def test_duplicate_transaction_in_one_batch_is_stored_once(settings, config):
    detector = Detector(load_rules(settings.rules_file))
    result = process_batch([record(0, row("T1", 0, 60_000)), record(1, row("T1", 0, 60_000))], detector, config,
                           now=NOW, load_state=no_history)
    assert [d["_id"] for d in result.transactions] == ["T1"]
    assert len(result.enriched) == 1
    assert {a["_id"] for a in result.alerts} == {"T1:high_amount"}


def test_suppressed_and_shadow_hits_go_to_their_own_lists(settings, config):
    from txnmon.core.rules import parse_rules

    rules = parse_rules("rules:\n  velocity: {suppress_for: 30m}\n  high_amount: {threshold: 1000, mode: shadow}\n")
    detector = Detector(rules)
    records = [record(i, row(f"T{i}", i // 2, amount=2_000)) for i in range(8)]
    result = process_batch(records, detector, config, now=NOW, load_state=no_history)
    assert [a["_id"] for a in result.alerts] == ["T3:velocity"]
    assert [a["suppressed_by"] for a in result.suppressed] == ["T3:velocity"] * 4
    assert len(result.shadow) == 8 and all(a["mode"] == "shadow" for a in result.shadow)
    assert result.alerts_by_rule == {"velocity": 1}
    t5 = next(d for d in result.transactions if d["_id"] == "T5")
    assert t5["alert_flag"] is True and t5["alert_reasons"] == ["velocity"]  # still a risky transaction


def test_events_far_behind_the_watermark_are_stored_and_flagged_late(settings, config):
    detector = Detector(load_rules(settings.rules_file))
    fresh = [record(i, {**row(f"T{i}", 0, user=f"U{i}"), "timestamp": f"2025-09-30T12:{i:02d}:00Z"})
             for i in range(DEFAULT_K)]
    old = record(DEFAULT_K, {**row("OLD", 0, user="U99"), "timestamp": "2025-09-30T09:00:00Z"})  # three hours behind
    result = process_batch([*fresh, old], detector, config, now=NOW, load_state=no_history)
    flags = {d["_id"]: d["late"] for d in result.transactions}
    assert flags["OLD"] is True and sum(flags.values()) == 1 and result.late == 1


def test_one_event_dated_far_ahead_does_not_make_later_traffic_late(settings, config):
    detector = Detector(load_rules(settings.rules_file))
    marks = Watermarks()
    normal = [record(i, {**row(f"T{i}", i % 60, user=f"U{i}")}) for i in range(20)]
    outlier = record(20, {**row("AHEAD", 0, user="U77"), "timestamp": "2025-10-01T09:00:00Z"})  # 23 h ahead
    after = [record(21 + i, {**row(f"A{i}", 30 + i, user=f"V{i}")}) for i in range(10)]
    result = process_batch([*normal, outlier, *after], detector, config, now=NOW, load_state=no_history,
                           watermarks=marks)
    assert result.late == 0
    assert marks.of(0) < dt.datetime(2025, 9, 30, 11, tzinfo=dt.UTC)


def test_watermarks_are_per_partition_and_resume_from_what_was_stored(settings, config):
    detector = Detector(load_rules(settings.rules_file))
    busy = [record(i, {**row(f"T{i}", 0, user=f"U{i}"), "timestamp": f"2025-09-30T18:{i:02d}:00Z"}, partition=1)
            for i in range(DEFAULT_K)]
    first = process_batch(busy, detector, config, now=NOW, load_state=no_history)
    # partition 0 is hours behind partition 1, and none of it is late: lateness is judged per partition
    quiet = [record(i, row(f"Q{i}", i, user=f"W{i}"), partition=0) for i in range(DEFAULT_K + 2)]
    marks = Watermarks()
    marks.restore(first.watermarks)
    second = process_batch(quiet, detector, config, now=NOW, load_state=no_history, watermarks=marks)
    assert second.late == 0 and set(first.watermarks) == {1}
    resumed = Watermarks()
    resumed.restore(first.watermarks)
    assert resumed.of(1) == marks.of(1) == dt.datetime(2025, 9, 30, 18, 0, tzinfo=dt.UTC)


def test_a_window_batch_can_still_withdraw_a_transaction_after_its_look_back_is_dropped(settings, config):
    # #27 item 6: a window replay keeps only the window's records, then the transactions sink finds one
    # of them in conflict with its stored copy (it was a live duplicate_id_conflict): the batch withdraws it
    from txnmon.core.batch import SinkOutcome, conflict

    detector = Detector(load_rules(settings.rules_file))
    result = process_batch([record(0, row("LOOK", 0)), record(1, row("T1", 1, 60_000))], detector, config, now=NOW,
                           load_state=no_history)
    result.keep_only(lambda r: r.offset >= 1)
    assert [d["_id"] for d in result.transactions] == ["T1"] and len(result.enriched) == 1
    result.apply(SinkOutcome(withdraw={"T1": conflict("T1")}))
    assert result.transactions == [] and result.alerts == [] and result.enriched == []
    assert [d["reason"] for d in result.rejected] == ["duplicate_id_conflict"] and len(result.dlq) == 1
    assert result.withdrawn == ["T1"]


def test_a_batch_redone_after_a_crash_flags_late_events_as_its_first_attempt_did(settings, config):
    # #27 item 8: the watermarks are stored (with the batch's MongoDB writes) before the offsets commit;
    # a crash in between redoes the batch, which must not see its own advance of the watermark
    from txnmon.core.watermark import stored

    def at(offset: int, tid: str, hour: int, minute: int) -> SourceRecord:
        when = f"2025-09-30T{hour:02d}:{minute:02d}:00Z"
        return record(offset, {**row(tid, 0, user=f"U{offset}"), "timestamp": when})

    committed = [at(i, f"A{i}", 10, i) for i in range(DEFAULT_K)]  # the watermark is 10:00 after these
    batch = [at(DEFAULT_K, "EARLY", 10, 30), *[at(DEFAULT_K + 1 + i, f"B{i}", 14, i) for i in range(DEFAULT_K)]]
    marks = Watermarks()
    process_batch(committed, Detector(load_rules(settings.rules_file)), config, now=NOW, load_state=no_history,
                  watermarks=marks)
    first = process_batch(batch, Detector(load_rules(settings.rules_file)), config, now=NOW, load_state=no_history,
                          watermarks=marks)
    saved = stored(first.watermarks, first.watermarks_before, first.next_offsets)  # what the sink writes
    assert first.late == 0  # 10:30 is not late against 10:00; against 14:00 (after the batch) it would be

    restored = Watermarks()  # the process died before the commit: a new one restores, and the batch comes again
    restored.restore(saved)
    redo = process_batch(batch, Detector(load_rules(settings.rules_file)), config, now=NOW, load_state=no_history,
                         watermarks=restored)
    assert {d["_id"]: d["late"] for d in redo.transactions} == {d["_id"]: d["late"] for d in first.transactions}
    assert redo.late == 0

    resumed = Watermarks()  # committed: the next batch starts at the stored offset and sees the advance
    resumed.restore(saved)
    after = process_batch([at(2 * DEFAULT_K + 1, "LATE", 10, 31)], Detector(load_rules(settings.rules_file)), config,
                          now=NOW, load_state=no_history, watermarks=resumed)
    assert after.late == 1


# --- the judged documents, byte for byte as the code before the one-copy build (#29) ---------------------------

def _old_default(value):
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _old_documents(record, tx, fingerprint, version, hits, config, now, model):
    """The stored document and the enriched message as _judge built them before: copies, then `json`."""
    live = [h for h in hits if h.mode == "live"]
    doc = {**tx, "value_category": value_category(tx["amount"], config.value_medium_threshold,
                                                  config.value_high_threshold),
           "processed_time": now, "alert_flag": bool(live), "alert_reasons": [h.rule for h in live],
           "risk_score": risk_score(live)}
    doc["rules_version"] = version
    doc["late"] = False
    doc["content_hash"] = fingerprint
    if model is not None:
        doc["model"] = {"version": model.version, "score": model.score}
    source = old_origin_of(record)
    doc["source"] = {"topic": source.topic, "partition": source.partition, "offset": source.offset}
    if source is not record:
        doc["judged_at"] = {"topic": record.topic, "partition": record.partition, "offset": record.offset}
    return doc, json.dumps(doc, default=_old_default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _old_fingerprint(tx):
    body = json.dumps(tx, default=_old_default, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(body.encode("ascii")).hexdigest()[:32]


def _outcome(fn, *args):
    try:
        return ("ok", repr(fn(*args)))
    except Exception as exc:
        return ("error", type(exc).__name__)


_texts = st.one_of(st.text(max_size=8), st.sampled_from(["é", "São Paulo", "\x7f", "\x00", 'a"b\\c\n', "😀", "\ud800"]))
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.floats(1e-12, 1e-3),
    st.floats(1e15, 1e22), st.sampled_from([-0.0, 1e-4, 1e16, 9999999999999998.0, 2**64, -(2**63) - 1]), _texts,
    st.datetimes(timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30))])),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.lists(inner, max_size=2).map(
    tuple), st.dictionaries(_texts, inner, max_size=3)), max_leaves=8)
# unknown fields the contract keeps, some named like the fields judging adds
_extra_keys = st.one_of(_texts, st.sampled_from(["risk_score", "source", "late", "judged_at", "model", "processed_time",
                                                 "value_category", "content_hash"]))
_headers = st.one_of(
    st.just(()),
    st.builds(lambda t, p, o: (("txnmon.source.topic", t), ("txnmon.source.partition", p),
                               ("txnmon.source.offset", o)),
              st.sampled_from([b"transactions.raw", b"t\xc3\xa9", b"\xff"]), st.sampled_from([b"2", b"x", b" 3"]),
              st.sampled_from([b"41", b"-1", b"1_0"])),
    st.just((("other", b"1"), ("txnmon.source.topic", b"raw"))),
)


@budget(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extras=st.dictionaries(_extra_keys, _values, max_size=4), headers=_headers,
       score=st.one_of(st.none(), st.floats(), st.sampled_from([1e-5, 0.5, 1e16])),
       amount=st.sampled_from([60_000, 6_000, 100]), location=st.sampled_from(["Mumbai", "São Paulo"]))
@example(extras={"n": 2**64, "f": 1e-05, "t": "é\x7f", "c": "a\nb"}, headers=(), score=None, amount=100,
         location="Mumbai")
@example(extras={"amount": None}, headers=(), score=None, amount=60_000, location="Mumbai")
def test_judged_documents_and_messages_are_byte_identical_to_the_old_build(settings, config, extras, headers, score,
                                                                          amount, location):
    detector = Detector(load_rules(settings.rules_file))
    raw = {**row("T1", 0, amount), "location": location}
    parsed = parse_transaction(json.dumps(raw).encode(), zone=config.zone, now=NOW, max_bytes=65536)
    # unknown fields only: an extra named like a contract field (`amount: None`) is no valid transaction
    tx = {**parsed, **{k: v for k, v in extras.items() if k not in parsed}}
    source = SourceRecord("transactions.by_user", 1, 7, b"U1", b"{}", 0, headers)
    model = None if score is None else ModelScore("m1", score)
    old_fp = _outcome(_old_fingerprint, tx)
    assert _outcome(content_fingerprint, tx) == old_fp
    assert _outcome(lambda t: fingerprint_of(t)[0], tx) == old_fp
    fingerprint = fingerprint_of(tx)[0] if old_fp[0] == "ok" else "f" * 32
    hits = detector.judge(tx, model).hits

    def new(plain):
        judged = _judge(source, tx, fingerprint, detector, config, now=NOW, lateness=dt.timedelta(hours=1),
                        watermark=None, model=model, plain=plain)
        return judged.doc, judged.enriched[1]

    old = _outcome(_old_documents, source, tx, fingerprint, detector.version, hits, config, NOW, model)
    assert _outcome(new, None) == old
    assert _outcome(new, fastjson.plain(tx)) == old  # the verdict the fingerprint found, reused
    assert origin_of(source) == old_origin_of(source)


@budget(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# each drawn plain most of the time, so that most examples leave one value at a time to the check
@given(now=st.one_of(st.just(NOW), st.datetimes(timezones=st.sampled_from([dt.UTC, ZoneInfo("UTC"),
                                                                            dt.timezone(dt.timedelta(hours=-3))]))),
       topic=st.sampled_from(["transactions.raw"] * 4 + ["é", b"raw"]),
       partition=st.sampled_from([1] * 4 + [True, 1e-5, 2.0]), offset=st.sampled_from([7] * 4 + [1e20, None]),
       fingerprint=st.sampled_from(["f" * 32] * 4 + [1e-5, None]), headers=_headers,
       score=st.sampled_from([None] * 4 + [0.5, 1e-5]), amount=st.sampled_from([100] * 3 + [60_000]),
       watermark=st.sampled_from([None, NOW]))
def test_the_added_fields_verdict_from_how_they_were_built_gives_the_old_bytes(settings, config, now, topic, partition,
                                                                               offset, fingerprint, headers, score,
                                                                               amount, watermark):
    """The document's added fields are judged plain from how `_judge` built them; any value msgspec would
    write apart from `json` (another zone, a year before 1000, a float in exponent form, bytes) still
    takes the `json` path: the enriched message is the old build's byte for byte."""
    detector = Detector(load_rules(settings.rules_file))
    tx = parse_transaction(json.dumps(row("T1", 0, amount)).encode(), zone=config.zone, now=NOW, max_bytes=65536)
    source = SourceRecord(topic, partition, offset, b"U1", b"{}", 0, headers)
    model = None if score is None else ModelScore("m1", score)
    hits = detector.judge(tx, model).hits
    late = watermark is not None and tx["event_time"] < watermark - dt.timedelta(hours=1)

    def new():
        judged = _judge(source, tx, fingerprint, detector, config, now=now, lateness=dt.timedelta(hours=1),
                        watermark=watermark, model=model, plain=True)
        return judged.doc, judged.enriched[1]

    def old():
        doc, _ = _old_documents(source, tx, fingerprint, detector.version, hits, config, now, model)
        doc["late"] = late
        return doc, json.dumps(doc, default=_old_default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    assert _outcome(new) == _outcome(old)


def test_judging_reuses_the_fingerprints_verdict_instead_of_walking_the_input_again(settings, config, monkeypatch):
    detector = Detector(load_rules(settings.rules_file))
    tx = parse_transaction(json.dumps(row("T1", 0)).encode(), zone=config.zone, now=NOW, max_bytes=65536)
    fingerprint, plain = fingerprint_of(tx)
    assert plain is True and fingerprint == _old_fingerprint(tx)
    walked = []
    real = fastjson.plain
    monkeypatch.setattr(fastjson, "plain", lambda doc: walked.append(doc) or real(doc))
    judged = _judge(record(0, {}), tx, fingerprint, detector, config, now=NOW, lateness=dt.timedelta(hours=1),
                    watermark=None, plain=plain)
    assert walked == []  # neither the input again nor what judging added (plain as built: `_plain_as_built`)
    assert judged.enriched[1] == _old_documents(record(0, {}), tx, fingerprint, detector.version, [], config, NOW,
                                                None)[1]


def test_a_field_judging_adds_later_is_not_taken_as_plain_without_a_look(settings, config, monkeypatch):
    """`_plain_as_built` knows the fields `_judge` adds today; one added to `enrichment` later (here a
    float `json` writes in exponent form) makes it ask `fastjson.plain`, so the message keeps `json`'s bytes."""
    detector = Detector(load_rules(settings.rules_file))
    tx = parse_transaction(json.dumps(row("T1", 0)).encode(), zone=config.zone, now=NOW, max_bytes=65536)
    real = batch_module.enrichment
    monkeypatch.setattr(batch_module, "enrichment", lambda *a, **k: {**real(*a, **k), "ratio": 1e-05})
    judged = _judge(record(0, {}), tx, "f" * 32, detector, config, now=NOW, lateness=dt.timedelta(hours=1),
                    watermark=None, plain=True)
    assert b'"ratio":1e-05' in judged.enriched[1]
    assert judged.enriched[1] == json.dumps(judged.doc, default=_old_default, ensure_ascii=False,
                                            separators=(",", ":")).encode("utf-8")


def test_a_scored_document_is_written_by_msgspec_with_its_tiny_score_as_json_writes_it(settings, config, monkeypatch):
    """Most scores are far below 1e-4, which msgspec writes apart from `json`: the score is written raw, the
    rest by msgspec, and the bytes are the old build's (before, every such message went to `json`)."""
    detector = Detector(load_rules(settings.rules_file))
    tx = parse_transaction(json.dumps(row("T1", 0)).encode(), zone=config.zone, now=NOW, max_bytes=65536)
    fingerprint, plain = fingerprint_of(tx)
    model, source = ModelScore("m1", 1.25e-05), record(0, {})
    slow = []
    real = fastjson.json.dumps
    monkeypatch.setattr(fastjson.json, "dumps", lambda *a, **k: slow.append(a) or real(*a, **k))
    judged = _judge(source, tx, fingerprint, detector, config, now=NOW, lateness=dt.timedelta(hours=1),
                    watermark=None, model=model, plain=plain)
    assert slow == []
    assert b'"model":{"version":"m1","score":1.25e-05}' in judged.enriched[1]
    assert judged.doc["model"] == {"version": "m1", "score": 1.25e-05}  # the stored document keeps the float
    assert judged.enriched[1] == _old_documents(record(0, {}), tx, fingerprint, detector.version, [], config, NOW,
                                                model)[1]
