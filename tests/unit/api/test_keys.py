import datetime as dt

import pytest

from txnmon.api import keys

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_a_new_key_matches_its_record_and_the_record_cannot_give_it_back():
    key, record = keys.new_key("shop-1", NOW)
    assert keys.matches(key, record)
    assert key.split("_", 2)[2] not in str(record)  # the secret is not stored
    assert set(keys.shown(record)) == {"_id", "key_id", "scopes", "created_at", "revoked_at"}


def test_a_changed_secret_another_record_or_a_revoked_key_does_not_match():
    key, record = keys.new_key("shop-1", NOW)
    _, other = keys.new_key("shop-2", NOW)
    assert not keys.matches(key[:-1] + ("A" if key[-1] != "A" else "B"), record)
    assert not keys.matches(key, other)
    assert not keys.matches(key, {**record, "revoked_at": NOW})
    assert not keys.matches(key, None)
    assert not keys.matches("garbage", record)


def test_key_id_is_read_only_from_a_well_formed_key():
    key, record = keys.new_key("shop-1", NOW)
    assert keys.key_id_of(key) == record["key_id"]
    assert keys.key_id_of("txn_nothex_secret") is None


@pytest.mark.parametrize("name", ["", "a b", "$x", "x" * 65])
def test_bad_names_are_refused(name):
    with pytest.raises(ValueError):
        keys.new_key(name, NOW)


def test_a_key_has_scopes_ingest_by_default_and_a_record_from_before_scopes_is_ingest_only():
    _, record = keys.new_key("shop-1", NOW)
    assert record["scopes"] == ["ingest"] and keys.scopes_of(record) == {"ingest"}
    _, both = keys.new_key("desk", NOW, ["read", "ingest,read"])
    assert both["scopes"] == ["ingest", "read"] and keys.shown(both)["scopes"] == ["ingest", "read"]
    old = {k: v for k, v in record.items() if k != "scopes"}
    assert keys.scopes_of(old) == {"ingest"} and keys.shown(old)["scopes"] == ["ingest"]
    assert keys.scopes_of(None) == frozenset()


@pytest.mark.parametrize("scopes", [["admin"], [], [" , "], ["ingest,write"]])
def test_unknown_or_no_scopes_are_refused(scopes):
    with pytest.raises(ValueError, match="scope"):
        keys.new_key("shop-1", NOW, scopes)
