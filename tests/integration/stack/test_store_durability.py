"""The local MongoDB-wire server keeps every write it acknowledged, even when it is SIGKILLed.

A private server (own port, own data file; never the shared stack) is started with the very command line
`devstack/stack.py` uses, written to in batches from a background thread, killed mid-stream, restarted on the
same file: every document whose insert was acknowledged must be there.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import BulkWriteError, PyMongoError

from tests.fixtures.devstack import load_stack

pytestmark = [pytest.mark.integration, pytest.mark.faults]

ROOT = Path(__file__).resolve().parents[3]
BATCH = 500
KILL_AFTER_ACKED = 20_000  # the server commits in the background once a second; this is ~2-3 s of writes
PAD = "x" * 150  # ~250-byte documents, like a transaction


devstack = load_stack()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((devstack.HOST, 0))
        return s.getsockname()[1]


class PrivateMongo:
    """One mongo-wire server process at a time on `port`, storing in `data_file`."""

    def __init__(self, tmp_path: Path) -> None:
        java = shutil.which("java")
        if java is None:
            pytest.fail("Java is missing: the dev stack's MongoDB-wire server needs a JDK 17+", pytrace=False)
        devstack.fetch(devstack.MONGO)  # the jars `make up` uses; a no-op once they are there
        self.port = _free_port()
        self.data_file = tmp_path / "txnmon.mv"
        self.log = tmp_path / "mongo.log"
        self.argv = devstack.mongo_command(java, port=self.port, data_file=self.data_file, heap=["-Xmx512m"])
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://{devstack.HOST}:{self.port}"

    def start(self, **env: str) -> None:
        """The server, with `env` added to this process's environment."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **env})
        deadline = time.monotonic() + 90
        while not devstack.port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the private mongo-wire server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def private_mongo(tmp_path: Path) -> Iterator[PrivateMongo]:
    server = PrivateMongo(tmp_path)
    try:
        yield server
    finally:
        server.stop()


class Writer(threading.Thread):
    """Inserts numbered documents in unordered batches until the server goes away; records what was acked."""

    def __init__(self, uri: str) -> None:
        super().__init__(name="durability-writer", daemon=True)
        self.client = MongoClient(uri, serverSelectionTimeoutMS=3000, socketTimeoutMS=10_000, retryWrites=False)
        self.acked: list[int] = []
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        collection = self.client.durability.tx
        try:
            while self.sent < 2_000_000:
                batch = [{"_id": i, "user_id": f"U{i % 997:04d}", "amount": i % 10_000 / 100, "pad": PAD}
                         for i in range(self.sent, self.sent + BATCH)]
                self.sent += BATCH
                try:
                    collection.insert_many(batch, ordered=False)
                except BulkWriteError as exc:  # some inserted, some not: only the inserted ones count
                    failed = {e["index"] for e in exc.details["writeErrors"]}
                    self.acked.extend(d["_id"] for k, d in enumerate(batch) if k not in failed)
                else:
                    self.acked.extend(d["_id"] for d in batch)
        except PyMongoError as exc:
            self.error = exc  # the server was killed: this batch was never acknowledged
        finally:
            self.client.close()


def test_sigkill_mid_stream_loses_no_acknowledged_write(private_mongo: PrivateMongo):
    private_mongo.start()
    writer = Writer(private_mongo.uri)
    writer.start()
    deadline = time.monotonic() + 90  # usually 2-3 s; a freshly started JVM on a busy machine is slower
    while len(writer.acked) < KILL_AFTER_ACKED:
        assert writer.is_alive(), f"the writer stopped early: {writer.error!r}"
        assert time.monotonic() < deadline, f"only {len(writer.acked)} documents acknowledged in 90 s"
        time.sleep(0.005)

    private_mongo.kill()
    writer.join(30)
    assert not writer.is_alive() and writer.error is not None, "the kill should land mid-stream"
    acked = set(writer.acked)

    private_mongo.start()
    with MongoClient(private_mongo.uri, serverSelectionTimeoutMS=5000) as client:
        stored = {doc["_id"] for doc in client.durability.tx.find({}, {"_id": 1})}

    missing = acked - stored
    assert not missing, (f"{len(missing)} of {len(acked)} acknowledged documents lost "
                         f"(e.g. {sorted(missing)[:5]}); {len(stored)} stored")
    # nothing but what was sent; at most the batch in flight at the kill beyond what was acknowledged
    assert stored <= set(range(writer.sent))
    assert len(stored) - len(acked) <= BATCH, os.linesep.join(private_mongo.log.read_text().splitlines()[-20:])
