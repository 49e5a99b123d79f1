"""The one pymongo client per deployment and process, and the translation of its errors.

Every module of this package reaches MongoDB through `shared_client` and wraps each method that
calls the server in `translated`, once: an outage (or a server answer meaning "not now") becomes
`StoreUnavailable`, which callers retry; anything the server refuses for good becomes
`StoreRefused`. Keeping both here means the store and its repositories pool the same sockets and
give callers the same two errors, and no code outside `txnmon.adapters.mongo` sees pymongo's.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from pymongo import MongoClient
from pymongo import errors as mongo_errors

from txnmon.errors import StoreRefused, StoreUnavailable
from txnmon.settings import Settings

DUPLICATE_KEY = 11000
NAMESPACE_EXISTS = 48

# Errors worth retrying the whole batch for: the server is away, or answered "not now".
_OUTAGES: tuple[type[Exception], ...] = (
    mongo_errors.AutoReconnect,
    mongo_errors.ConnectionFailure,
    mongo_errors.ServerSelectionTimeoutError,
    mongo_errors.NetworkTimeout,
    mongo_errors.ExecutionTimeout,
    mongo_errors.WTimeoutError,
    mongo_errors.WriteConcernError,
)

P = ParamSpec("P")
T = TypeVar("T")


def first_line(exc: BaseException) -> str:
    return str(exc).split("\n")[0].split(", Timeout:")[0][:300]


def translated(method: Callable[P, T]) -> Callable[P, T]:
    """Outages -> StoreUnavailable; other server errors -> StoreRefused. Only this package sees pymongo's."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except _OUTAGES as exc:
            raise StoreUnavailable(first_line(exc)) from exc
        except mongo_errors.BulkWriteError as exc:
            raise bulk_error(exc) from exc
        except mongo_errors.OperationFailure as exc:
            if _transient(exc.code, exc.details):
                raise StoreUnavailable(f"server error, retrying: {first_line(exc)}") from exc
            raise StoreRefused(first_line(exc)) from exc
        except mongo_errors.PyMongoError as exc:
            raise StoreRefused(first_line(exc)) from exc

    return call


# Server answers that say "not now", not "never": internal and unknown errors (a server-side bug or a
# node in trouble), interrupted operations, and anything labelled retryable by the server.
_TRANSIENT_CODES = frozenset({None, 0, 1, 6, 7, 8, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})


def _transient(code: Any, details: Any) -> bool:
    labels = set((details or {}).get("errorLabels", []))
    return code in _TRANSIENT_CODES or bool(labels & {"RetryableWriteError", "TransientTransactionError"})


def bulk_error(exc: Any) -> StoreUnavailable | StoreRefused:
    details = exc.details or {}
    if details.get("writeConcernErrors"):
        # acknowledged by the primary but not by the write concern: a failover may roll it back
        return StoreUnavailable(f"write concern not satisfied: {details['writeConcernErrors'][0].get('errmsg')}")
    transient = [e for e in details.get("writeErrors", []) if _transient(e.get("code"), e)]
    if transient:
        # a document the server could not write right now is retried with the batch, never dead-lettered
        return StoreUnavailable(f"write error, retrying: {transient[0].get('errmsg')}")
    refused = {e["index"]: str(e.get("errmsg", ""))[:500] for e in details.get("writeErrors", [])
               if e.get("code") != DUPLICATE_KEY}
    return StoreRefused(f"MongoDB refused {len(refused)} document(s)", refused)


_clients: dict[tuple[Any, ...], MongoClient] = {}
_clients_lock = threading.Lock()


def _client_key(settings: Settings) -> tuple[Any, ...]:
    password = settings.mongo_password.get_secret_value() if settings.mongo_password else None
    w = settings.mongo_write_concern
    return (settings.mongo_uri.get_secret_value(), settings.mongo_username, password, settings.mongo_timeout_ms,
            int(w) if w.isdigit() else w, settings.mongo_journal)


def shared_client(settings: Settings) -> MongoClient:
    # One pooled client per deployment and process: pymongo clients are thread-safe, reconnect
    # by themselves and cost threads and sockets, so every store of the process shares it.
    key = _client_key(settings)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            uri, username, password, timeout_ms, w, journal = key
            kwargs: dict[str, Any] = {
                "w": w,
                "journal": journal,
                "serverSelectionTimeoutMS": timeout_ms,
                # the connect timeout is also the monitor's heartbeat timeout: a busy server that is
                # slow to answer a heartbeat must not be declared down (that cancels in-flight batches)
                "connectTimeoutMS": max(timeout_ms, 20_000),
                "socketTimeoutMS": max(timeout_ms * 6, 30_000),
                "tz_aware": True,
                "appname": "txnmon",
            }
            if username is not None:
                kwargs.update(username=username, password=password)
            client = _clients[key] = MongoClient(uri, **kwargs)
        return client


def close_shared_client(settings: Settings) -> None:
    """Close this process's pooled client for the deployment (a later `shared_client` reconnects)."""
    with _clients_lock:
        client = _clients.pop(_client_key(settings), None)
    if client is not None:
        client.close()
