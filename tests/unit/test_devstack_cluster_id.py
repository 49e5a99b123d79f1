"""devstack/stack.py's KRaft cluster id: the storage tool must always accept it."""

from __future__ import annotations

import base64
import uuid

from tests.fixtures.devstack import load_stack

devstack = load_stack()


def test_a_cluster_id_never_starts_with_a_dash_and_is_16_bytes(monkeypatch):
    # the first draw encodes to "-..." (0xf8 -> "-" in URL-safe base64): it is drawn again, as Kafka does
    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=bytes(range(16)))])
    monkeypatch.setattr(devstack.uuid, "uuid4", lambda: next(draws))
    cid = devstack.new_cluster_id()
    assert cid == base64.urlsafe_b64encode(bytes(range(16))).decode().rstrip("=")
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16
    monkeypatch.undo()
    assert not any(devstack.new_cluster_id().startswith("-") for _ in range(2_000))
