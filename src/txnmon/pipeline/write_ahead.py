"""Inserting a batch's transactions while the rest of the batch is still being judged.

Measured on the local stack (issue 29), a batch spent about 57% of its time waiting for MongoDB to insert
its transactions and 23% judging them, one after the other: the processor's core idled while the store
worked. `process_batch` hands the judged documents over every WRITE_AHEAD_RECORDS (`on_judged`), and a
thread inserts them while the next ones are judged; the transactions sink then writes only what was not
written ahead, and reads the outcome of the rest from here, exactly as if it had written them itself.

Nothing else moves: judging never reads MongoDB, so the verdicts are the same, and the Kafka transaction
still commits after every sink has written. A chunk that fails (an outage, anything unexpected) is left to
the sink, which writes it again with its retries (what the failed insert did store then counts as stored
before, as after the sink's own outage).

What is longer: the time in which a batch has stored transactions but no commit. A process killed while
judging (SIGKILL, out of memory) leaves the parts written so far, as a kill in the middle of the sink's
insert did. The redo judges them again from the committed state and finds them stored from the same
message with the same verdict: this batch redone, kept (`core.resend`). Only when the rules changed
between the kill and the restart can the redo's verdict differ; the stored copy is then taken for a
re-send and kept as it was, with the alerts of the first verdict not written and no enriched message.
WRITE_AHEAD_RECORDS=0 writes after judging, as before. (The raw rejects are written before judging, so
a stop while they wait out an outage leaves nothing written ahead.)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import TRANSACTIONS
from txnmon.errors import StoreRefused, StoreUnavailable

__all__ = ["DUPLICATE", "INSERTED", "REFUSED", "WriteAhead", "Written", "insert_written"]
log = logging.getLogger("txnmon.stream")

INSERTED = "inserted"
DUPLICATE = "duplicate"  # stored already: the sink reads the stored copy, as for its own duplicates
REFUSED = "refused"  # for good (not storable): the transaction goes to the DLQ, as when the sink is refused
Written = tuple[str, str]  # (INSERTED, DUPLICATE or REFUSED; why it was refused, else "")


class WriteAhead:
    """One processor's inserts ahead of its transactions sink: one worker thread, one batch at a time.

    The processor calls `begin` before each batch and gives `submit` to `process_batch`; the sink calls
    `settle` (again on each retry: the outcome is kept until the next `begin`)."""

    def __init__(self, store: MongoStore, every: int) -> None:
        self.store = store
        self.every = every  # documents per insert
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="txnmon-write-ahead")
        self._pending: list[Future[dict[Any, Written]]] = []
        self._written: dict[Any, Written] = {}
        # set by the worker when the store was unreachable: the batch's later parts are left to the sink at
        # once, not each waited out for the driver's timeout (a stop then waits for one timeout, as before)
        self._unreachable = False

    def begin(self) -> None:
        """A new batch: what an earlier one left (one that stopped while judging) is waited for, then forgotten."""
        self.settle()
        self._written = {}
        self._unreachable = False  # no part is in flight now: the worker does not read it meanwhile

    def submit(self, docs: Sequence[dict[str, Any]]) -> None:
        """Insert these judged documents in the background (a copy of the list: the batch's grows on)."""
        self._pending.append(self._pool.submit(self._insert, list(docs)))

    def settle(self) -> dict[Any, Written]:
        """`_id` -> how it was written, for each document written ahead (waited for)."""
        pending, self._pending = self._pending, []
        for future in pending:
            self._written.update(future.result())  # `_insert` raises nothing
        return self._written

    def close(self) -> None:
        """Parts not started are dropped (their batch is not committed: it is redelivered), one in flight ends."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _insert(self, docs: list[dict[str, Any]]) -> dict[Any, Written]:
        if self._unreachable:
            return {}
        try:
            return insert_written(self.store, docs)
        except StoreRefused:
            return {}  # refused without naming a document: the sink's own write says what happens
        except StoreUnavailable as exc:
            self._unreachable = True
            log.info("writing %d transactions ahead failed (%s): the sink writes them", len(docs), exc)
            return {}
        except Exception:  # a surprise here must not lose the chunk: the sink writes it, and says what is wrong
            log.exception("writing %d transactions ahead failed: the sink writes them", len(docs))
            return {}


def insert_written(store: MongoStore, docs: Sequence[dict[str, Any]]) -> dict[Any, Written]:
    """Insert `docs` into TRANSACTIONS (`insert_missing`): `_id` -> how each was written, refusals logged.
    Raises what `insert_missing` raises, but a refusal that names documents (the others are stored)."""
    if not docs:
        return {}
    refused: dict[Any, str] = {}
    try:
        duplicates = set(store.insert_missing(TRANSACTIONS, docs).duplicate_ids)
    except StoreRefused as exc:
        if not exc.refused:
            raise  # refused as a whole (e.g. not authorised): nothing may be taken as stored
        duplicates = set(exc.duplicate_ids)
        for i, why in sorted(exc.refused.items()):
            log.error("MongoDB refused transaction %s from %s: %s", docs[i]["_id"], docs[i].get("source"), why)
            refused[docs[i]["_id"]] = why
    return {d["_id"]: ((REFUSED, refused[d["_id"]]) if d["_id"] in refused
                       else (DUPLICATE, "") if d["_id"] in duplicates else (INSERTED, "")) for d in docs}
