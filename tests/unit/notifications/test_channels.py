"""Every delivery error is an outcome (retry or dead letter), never a crashed worker: real sockets."""

from __future__ import annotations

import datetime as dt
import socket
import threading
from types import SimpleNamespace

import pytest

from txnmon.errors import DeliveryFailed, DeliveryRefused
from txnmon.notifications import channels

NOW = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
ENTRY = {"_id": "alert:T1:hook", "destination": "hook", "kind": "alert", "event_id": "T1",
         "event": {"kind": "alert", "rule": "high_amount"}}


def garbage_server(answer: bytes) -> tuple[str, threading.Thread]:
    """A listener on 127.0.0.1 that answers one request with `answer` and closes."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(answer)
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{port}/hook", thread


def hook(url_env: str = "HOOK_URL") -> SimpleNamespace:
    return SimpleNamespace(type="webhook", url_env=url_env, secret_env="HOOK_SECRET", timeout_seconds=5.0)


def test_an_answer_that_is_not_http_is_retried():
    url, thread = garbage_server(b"SSH-2.0-OpenSSH_9.6\r\n")
    with pytest.raises(DeliveryFailed, match="not an HTTP answer"):
        channels.deliver(ENTRY, hook(), {"HOOK_URL": url, "HOOK_SECRET": "s"}, NOW)
    thread.join(5)


def test_a_url_with_a_bad_port_is_a_dead_letter_that_does_not_show_the_url():
    env = {"HOOK_URL": "http://127.0.0.1:80tok3n/hook", "HOOK_SECRET": "s"}
    with pytest.raises(DeliveryRefused, match="not valid") as refused:
        channels.deliver(ENTRY, hook(), env, NOW)
    assert "tok3n" not in str(refused.value)


def test_an_unexpected_error_in_a_channel_is_a_retry(monkeypatch):
    def broken(*args, **kwargs):
        raise OverflowError("date value out of range")

    monkeypatch.setattr(channels, "post", broken)
    with pytest.raises(DeliveryFailed, match="unexpected OverflowError"):
        channels.deliver(ENTRY, hook(), {"HOOK_URL": "http://127.0.0.1:9/x", "HOOK_SECRET": "s"}, NOW)
