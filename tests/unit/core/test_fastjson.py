"""The fast JSON path (msgspec) against today's standard-library code, on generated input.

Differential: the decoded transaction or rejection (reason and detail), the content fingerprint and
the enriched message bytes must equal what the `json` module gave before the fast path existed. The
reference implementations are frozen copies of that code. The input is built as JSON *text*, so it
reaches the traps the issue lists: floats written below 1e-4 and above 1e16 or with long mantissas,
integers beyond 64 bits, non-ASCII text raw and escaped, duplicate keys, timestamps with 7-9
fractional digits, unknown fields, NaN/Infinity tokens, lone surrogates, invalid UTF-8, a BOM and
deep nesting.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from txnmon.core import fastjson
from txnmon.core.batch import content_fingerprint
from txnmon.core.contract import InvalidTransaction, normalise, parse_transaction
from txnmon.core.fastjson import to_json_bytes
from txnmon.core.identity import fingerprint_of
from txnmon.core.records import NOT_JSON, NOT_OBJECT, NOT_UTF8, TOO_LARGE, Rejection

NOW = dt.datetime(2025, 10, 1, 12, 0, tzinfo=dt.UTC)
ZONE = ZoneInfo("Asia/Kolkata")
MAX_BYTES = 64 * 1024
BUDGET = settings(max_examples=250, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])


# --- today's code, frozen ------------------------------------------------------------------------------------

def _reject_nonfinite(token: str) -> float:
    raise ValueError(f"{token} is not valid JSON")


def old_decode(raw: bytes, max_bytes: int) -> dict[str, Any]:
    if len(raw) > max_bytes:
        raise InvalidTransaction(TOO_LARGE, f"message is {len(raw)} bytes, the limit is {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidTransaction(NOT_UTF8, f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        obj = json.loads(text, parse_constant=_reject_nonfinite)
    except (ValueError, RecursionError) as exc:
        raise InvalidTransaction(NOT_JSON, f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InvalidTransaction(NOT_OBJECT, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def old_parse(raw: bytes) -> dict[str, Any] | Rejection:
    try:
        return normalise(old_decode(raw, MAX_BYTES), zone=ZONE, now=NOW)
    except InvalidTransaction as exc:
        return exc.rejection


def _old_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def old_fingerprint(tx: dict[str, Any]) -> str:
    body = json.dumps(tx, default=_old_default, sort_keys=True, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(body.encode("ascii")).hexdigest()[:32]


def old_to_json_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, default=_old_default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def outcome(fn: Any, *args: Any) -> tuple[str, str]:
    """A result or the error's type, as text that tells -0.0 from 0, 1 from 1.0 and key order."""
    try:
        return ("ok", repr(fn(*args)))
    except Exception as exc:
        return ("error", type(exc).__name__)


# --- JSON text with the traps --------------------------------------------------------------------------------

decimal_text = st.builds(lambda i, f, e, sign: f"{sign}{i}.{f}e{e}", st.integers(0, 10**20), st.integers(0, 10**25),
                         st.integers(-330, 330), st.sampled_from(["", "-"]))
number_tokens = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
    st.integers(min_value=-(2**63) - 3, max_value=-(2**63) + 3).map(str),
    st.integers(min_value=2**63 - 3, max_value=2**64 + 3).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(min_value=1e-12, max_value=1e-3).map(repr),
    st.floats(min_value=1e15, max_value=1e22).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x:.25g}"),
    decimal_text,
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "-0", "-0.0", "1E5", "1.5E+300",
                     "0.30000000000000004440892098500626161694526672363281250000001", "2.2250738585072011e-308",
                     "01", "1.", ".5", "+1", "0x10", "1" * 4400, "1" * 5000]),
)
texts = st.one_of(st.text(max_size=12), st.text(alphabet=st.characters(blacklist_categories=()), max_size=6),
                  st.sampled_from(["é", "São Paulo", "日本", "\x7f", "\x00", "a\nb", "😀"]))
string_tokens = st.one_of(
    texts.map(lambda s: json.dumps(s, ensure_ascii=False)),  # raw UTF-8 (a lone surrogate: invalid UTF-8)
    texts.map(json.dumps),  # \u escapes
    st.sampled_from(['"\\ud800"', '"\\udfff x"', '"\\ud83d\\ude00"', '"a\\u0000"', '"\x01"', '"\t"', '"\\x"',
                     '"\\/"', '"$where"', '"a.b"']),
)
key_tokens = st.one_of(string_tokens, st.sampled_from(['"amount"', '"user_id"', '"quantity"', '"extra"', '"a"']))
scalar_tokens = st.one_of(number_tokens, string_tokens, st.sampled_from(["true", "false", "null"]))
value_tokens = st.recursive(scalar_tokens, lambda inner: st.one_of(
    st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
    st.lists(st.tuples(key_tokens, inner), max_size=4).map(lambda kv: "{" + ",".join(f"{k}:{v}" for k, v in kv) + "}"),
), max_leaves=12)
timestamp_tokens = st.one_of(
    st.builds(lambda base, digits, zone: f'"{base}.{digits}{zone}"', st.sampled_from(["2025-09-30T10:05:00",
                                                                                      "2025-09-30 10:05:07"]),
              st.integers(0, 10**9 - 1).map(str), st.sampled_from(["", "Z", "+05:30"])),
    st.sampled_from(['"2025-09-30T10:05:00Z"', '"30-09-2025 10:05"', '"2025-10-02T13:00:00Z"', '"1999-12-31"']),
    value_tokens,
)
FIELDS = {
    "transaction_id": st.one_of(string_tokens, number_tokens, st.just('"t-1"')),
    "user_id": st.one_of(string_tokens, number_tokens, st.just('"u-1"')),
    "amount": st.one_of(number_tokens, string_tokens, value_tokens),
    "payment_method": st.one_of(st.just('"UPI"'), value_tokens),
    "location": st.one_of(st.just('"Paris"'), st.just('"São Paulo"'), value_tokens),
    "timestamp": timestamp_tokens,
    "quantity": st.one_of(number_tokens, value_tokens),
    "status": st.sampled_from(['"success"', '" FAILED "', '"maybe"', "1"]),
}


@st.composite
def raw_transactions(draw: st.DrawFn) -> bytes:
    pairs = [(f'"{name}"', draw(st.one_of(strategy, strategy, strategy, value_tokens)))
             for name, strategy in FIELDS.items() if draw(st.integers(0, 9))]  # a field is sometimes missing
    pairs += draw(st.lists(st.tuples(key_tokens, value_tokens), max_size=3))  # unknown fields, duplicate keys
    pairs = draw(st.permutations(pairs))
    space = draw(st.sampled_from(["", " ", "\n  ", "\t"]))
    text = "{" + space + ("," + space).join(f"{k}:{space}{v}" for k, v in pairs) + space + "}"
    wrap = draw(st.sampled_from(["plain"] * 6 + ["array", "deep", "bom", "garbage", "invalid-utf8"]))
    text = {"array": f"[{text}]", "deep": "[" * 30 + text + "]" * 30, "bom": "\ufeff" + text,
            "garbage": text + " x"}.get(wrap, text)
    raw = text.encode("utf-8", "surrogatepass")
    return raw[:-1] + b"\xff}" if wrap == "invalid-utf8" else raw


@BUDGET
@given(raw_transactions())
@example(b'{"transaction_id":"t","user_id":"u","amount":12345678901234567890123,"payment_method":"UPI",'
         b'"location":"X","timestamp":"2025-09-30T10:05:00Z"}')
@example(b'{"transaction_id":"t","user_id":"u","amount":1,"amount":2,"payment_method":"UPI",'
         b'"location":"X","timestamp":"2025-09-30T10:05:00.123456789Z","extra":1e-07}')
@example(b'{"transaction_id":"t","user_id":"u","amount":NaN,"payment_method":"UPI","location":"X",'
         b'"timestamp":"2025-09-30T10:05:00Z"}')
@example(b'{"transaction_id":"t","user_id":"u","amount":1,"payment_method":"UPI","location":"\\ud800",'
         b'"timestamp":"2025-09-30T10:05:00Z"}')
@example(b'{"a":' * 2000 + b"1" + b"}" * 2000)
def test_the_contract_parses_exactly_as_it_did_with_json_loads(raw: bytes) -> None:
    # inside `outcome`: on Python 3.13 json decodes nesting deep enough that the contract's own key check
    # recurses past the limit, in today's code and the new alike (the batch sends such a record to the DLQ)
    new = outcome(lambda: parse_transaction(raw, zone=ZONE, now=NOW, max_bytes=MAX_BYTES))
    assert new == outcome(old_parse, raw)


@BUDGET
@given(raw_transactions())
def test_a_fast_decode_is_the_same_object_json_loads_gives(raw: bytes) -> None:
    fast = fastjson.loads_object(raw)
    if fast is not None:  # None: today's code decides, so nothing can differ
        assert repr(fast) == repr(old_decode(raw, MAX_BYTES))


# --- encoding: the fingerprint and the enriched message --------------------------------------------------------

datetimes = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                         timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)),
                                                    ZoneInfo("Europe/Lisbon")]))
doc_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.floats(min_value=1e-12, max_value=1e-3),
    st.floats(min_value=1e15, max_value=1e22), st.sampled_from([-0.0, 0.0, 1e-4, 1e16, 9999999999999998.0]),
    texts, datetimes, st.datetimes(timezones=st.just(dt.UTC)),
)
doc_values = st.recursive(doc_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.lists(inner, max_size=3).map(tuple),
    st.dictionaries(texts, inner, max_size=4)), max_leaves=20)
# documents that mostly take the fast path (one awkward value sends a whole document to the fallback)
plain_values = st.one_of(texts, st.integers(min_value=-(2**63), max_value=2**63 - 1), st.booleans(), st.none(),
                         st.floats(min_value=1e-4, max_value=1e15), st.datetimes(timezones=st.just(dt.UTC)),
                         st.floats(min_value=1e-12, max_value=1e-3), st.floats(min_value=1e15, max_value=1e22))
documents = st.one_of(st.dictionaries(texts, doc_values, max_size=8), st.dictionaries(texts, plain_values, max_size=8))
BENCH_DOC = {"transaction_id": "t-000123", "user_id": "u-0042", "amount": 123.45, "payment_method": "card",
             "location": "Paris", "timestamp": "2025-09-30T14:32:00Z", "quantity": 1, "status": "success",
             "event_time": dt.datetime(2025, 9, 30, 14, 32, tzinfo=dt.UTC), "_id": "t-000123"}


@BUDGET
@given(documents)
@example({"amount": 1e-05, "big": 1e16, "n": 2**64, "t": "é\x7f", "when": dt.datetime(999, 1, 1, tzinfo=dt.UTC)})
@example({"z": 1, "a": {"y": [1.5, None], "b": "x"}, "é": 2, "A": 3})
@example({"s": "\ud800"})
@example({"t": "é", "d": "\x7f", "c": "\n"})
@example({"small": 1e-05})
@example({"large": 1e16})
@example({"a\nb": 'q"\\\x01\x1f/', "\t": ["\x00", {"\x7f": 1}]})
@example({"n": 2**63, "m": -(2**63) - 1, "ok": [2**63 - 1, -(2**63)]})
def test_the_fingerprint_and_the_enriched_message_are_byte_identical(doc: dict[str, Any]) -> None:
    assert outcome(content_fingerprint, doc) == outcome(old_fingerprint, doc)
    assert outcome(lambda d: fingerprint_of(d)[0], doc) == outcome(old_fingerprint, doc)
    assert outcome(to_json_bytes, doc) == outcome(old_to_json_bytes, doc)
    verdict = fastjson.plain(doc)  # found once, given to both encoders (what the batch does)
    assert outcome(fastjson.sorted_ascii_json, doc, verdict) == outcome(old_fingerprint_body, doc)
    assert outcome(to_json_bytes, doc, verdict) == outcome(old_to_json_bytes, doc)


def test_the_usual_transaction_takes_the_fast_path() -> None:
    """The fast path is not silently always the fallback: bench-shaped input goes through msgspec."""
    raw = old_to_json_bytes({k: v for k, v in BENCH_DOC.items() if k not in ("event_time", "_id")})
    assert fastjson.loads_object(raw) == json.loads(raw)
    enriched = {**BENCH_DOC, "location": "São Paulo", "processed_time": NOW, "alert_reasons": ["velocity"],
                "source": {"topic": "raw", "partition": 0, "offset": 7}}
    assert fastjson.dumps(enriched) == old_to_json_bytes(enriched)
    assert fastjson.dumps_sorted_ascii(BENCH_DOC) == old_fingerprint_body(BENCH_DOC)


def old_fingerprint_body(tx: dict[str, Any]) -> bytes:
    return json.dumps(tx, default=_old_default, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode()


def test_what_the_fast_path_cannot_prove_goes_to_todays_code() -> None:
    assert fastjson.loads_object(b'{"amount": NaN}') is None
    assert fastjson.loads_object(b'{"a": "\\ud800"}') is None
    assert fastjson.loads_object(b"[" * 70 + b"]" * 70) is None
    assert fastjson.loads_object(b"[1]") is None  # not an object: today's code names the type
    assert fastjson.dumps({"x": 1e-05}) is None and fastjson.dumps({"x": 1e16}) is None
    assert fastjson.dumps({"t": (1, 2)}) is None
    # integers of any size: msgspec writes the digits `json` writes (the differential test covers the rest)
    assert fastjson.dumps({"n": 2**64, "m": -(2**70)}) == b'{"n":18446744073709551616,"m":-1180591620717411303424}'
    assert fastjson.dumps({"when": dt.datetime(2025, 1, 1, tzinfo=ZoneInfo("Europe/Lisbon"))}) is None
    assert fastjson.dumps_sorted_ascii({"t": "é"}) is None and fastjson.dumps_sorted_ascii({"t": "\x7f"}) is None
    assert fastjson.dumps({"t": "é"}) == '{"t":"é"}'.encode()
    assert fastjson.dumps({"n": 10**4400}) is None  # past str()'s digit limit `json` raises; it still does
    assert fastjson.dumps({"x": float("nan")}) is None and fastjson.dumps({"x": float("-inf")}) is None


def test_control_characters_quotes_and_backslashes_take_the_fast_path_in_the_fingerprint() -> None:
    """msgspec escapes them as `ensure_ascii` does: the bytes written are checked, not each text first."""
    doc = {**BENCH_DOC, "note": 'a\nb"c\\d\x01\x1f', "k\t": ["\x00", {"z": "\x08", "a": "/"}]}
    assert fastjson.dumps_sorted_ascii(doc) == old_fingerprint_body(doc)
    for escaped_by_json_only in ("\x7f", "é", "\u2028"):
        assert fastjson.dumps_sorted_ascii({**doc, "note": escaped_by_json_only}) is None
        assert fastjson.dumps_sorted_ascii({escaped_by_json_only: 1}) is None


def test_a_verdict_given_is_trusted_and_one_refused_goes_to_json() -> None:
    assert fastjson.plain(BENCH_DOC) and not fastjson.plain({"x": 1e-05}) and not fastjson.plain([1])
    assert fastjson.dumps(BENCH_DOC, False) is None and fastjson.dumps_sorted_ascii(BENCH_DOC, False) is None
    assert fastjson.to_json_bytes(BENCH_DOC, True) == old_to_json_bytes(BENCH_DOC)
    assert fastjson.sorted_ascii_json(BENCH_DOC, False) == old_fingerprint_body(BENCH_DOC)


@settings(max_examples=500, deadline=None)
@given(value=st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.floats(1e-30, 1e-3),
                       st.floats(1e15, 1e30), st.sampled_from([0.0, -0.0, 1e-4, 1e16, 5e-324, 1.7976931348623157e308])))
def test_an_exact_float_is_written_as_json_writes_the_float(value: float) -> None:
    doc = {"model": {"version": "rm-1", "score": fastjson.exact_float(value)}}
    assert fastjson.dumps(doc, proven=True) == json.dumps({"model": {"version": "rm-1", "score": value}},
                                                          separators=(",", ":")).encode()
