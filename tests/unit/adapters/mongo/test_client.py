"""The error translation every store and repository method goes through, and the shared client (no server)."""

from __future__ import annotations

import pytest
from pymongo.errors import AutoReconnect, BulkWriteError, DuplicateKeyError, OperationFailure, WriteConcernError

from txnmon.adapters.mongo import client
from txnmon.errors import RetryableError, StoreRefused, StoreUnavailable
from txnmon.settings import load_settings


def raising(exc: BaseException):
    @client.translated
    def method():
        raise exc

    return method


@pytest.mark.parametrize("exc", [
    AutoReconnect("connection reset"),
    WriteConcernError("waiting for replication", 64, {}),
    OperationFailure("Unknown error", code=8),  # internal: a node in trouble
    OperationFailure("anything", code=12345, details={"errorLabels": ["RetryableWriteError"]}),
])
def test_outages_and_not_now_answers_are_retryable(exc):
    with pytest.raises(StoreUnavailable) as caught:
        raising(exc)()
    assert isinstance(caught.value, RetryableError) and caught.value.__cause__ is exc


@pytest.mark.parametrize("exc", [
    OperationFailure("not authorized on txnmon to execute command find", code=13),
    DuplicateKeyError("E11000 duplicate key", code=11000),
])
def test_refusals_are_final(exc):
    with pytest.raises(StoreRefused, match=str(exc).split()[0]):
        raising(exc)()


def test_an_error_already_translated_passes_through_once():
    inner = StoreUnavailable("down")
    with pytest.raises(StoreUnavailable) as caught:
        raising(inner)()
    assert caught.value is inner


def test_only_the_first_line_of_a_server_message_is_kept():
    with pytest.raises(StoreUnavailable) as caught:
        raising(AutoReconnect("no servers found, Timeout: 30s, Topology: ...\nmore"))()
    assert str(caught.value) == "no servers found"


def test_a_bulk_error_names_the_refused_documents_and_ignores_duplicates():
    error = client.bulk_error(BulkWriteError({"writeErrors": [{"index": 0, "code": 11000, "errmsg": "dup"},
                                                              {"index": 4, "code": 17419, "errmsg": "too big"}]}))
    assert isinstance(error, StoreRefused) and error.refused == {4: "too big"}
    wc = client.bulk_error(BulkWriteError({"writeErrors": [], "writeConcernErrors": [{"errmsg": "timed out"}]}))
    assert isinstance(wc, StoreUnavailable) and "write concern" in str(wc)
    transient = client.bulk_error(BulkWriteError({"writeErrors": [{"index": 0, "code": 91, "errmsg": "shutdown"}]}))
    assert isinstance(transient, StoreUnavailable)


def test_one_client_per_deployment_and_process():
    settings = load_settings(metrics_port=0, mongo_uri="mongodb://127.0.0.1:1", mongo_timeout_ms=100)
    first = client.shared_client(settings)
    try:
        assert client.shared_client(settings.model_copy()) is first
    finally:
        client.close_shared_client(settings)
    second = client.shared_client(settings)
    try:
        assert second is not first
    finally:
        client.close_shared_client(settings)
