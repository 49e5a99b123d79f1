"""The Quix Streams peer's own logic (bench/quix_peer.py), without quixstreams installed: the
amount band, the per-user count kept in Quix-like state, the upserts by id, and when it is done."""

from __future__ import annotations

import pytest

from bench.quix_peer import Progress, amount_band, count_and_band, upsert_requests


class DictState:
    """Quix's `State` as the peer uses it: get with a default, set."""

    def __init__(self) -> None:
        self.data: dict = {}

    def get(self, key: str, default=None):
        return self.data.get(key, default)

    def set(self, key: str, value) -> None:
        self.data[key] = value


@pytest.mark.parametrize(("amount", "band"), [(0, "small"), (999.99, "small"), ("1000", "medium"),
                                              (49_999, "large"), (50_000, "very_large"), (75_000.5, "very_large")])
def test_amount_bands(amount, band):
    assert amount_band(amount) == band


def test_the_count_is_per_user_state_and_the_transaction_is_kept():
    alice, bob = DictState(), DictState()  # Quix keeps one state per message key (the user id)
    tx = {"transaction_id": "T1", "user_id": "U1", "amount": 20_000}
    assert count_and_band(tx, alice) == {**tx, "user_txn_count": 1, "amount_band": "large"}
    assert count_and_band(tx, alice)["user_txn_count"] == 2
    assert count_and_band(tx, bob)["user_txn_count"] == 1
    assert "user_txn_count" not in tx


def test_upserts_are_by_transaction_id():
    from pymongo import UpdateOne

    assert upsert_requests([{"transaction_id": "T9", "amount": 5}]) == [
        UpdateOne({"_id": "T9"}, {"$set": {"transaction_id": "T9", "amount": 5}}, upsert=True)]
    assert upsert_requests([{"transaction_id": "T9", "amount": 5}]) != [
        UpdateOne({"_id": "T9"}, {"$set": {"transaction_id": "T9", "amount": 5}})]


def test_progress_is_done_once_the_expected_count_is_stored():
    p = Progress(expected=5)
    assert p.summary()["finished"] is False
    p.seen()
    assert p.wrote(3) is False
    assert p.wrote(2) is True
    assert p.wrote(2) is False  # a redelivered batch does not finish it twice
    summary = p.summary()
    assert summary["finished"] is True and summary["stored"] == 7 and summary["tx_per_s"] > 0
