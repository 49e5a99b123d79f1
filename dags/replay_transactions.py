"""
### Replay transactions into Kafka

**A file** (`file`): checked with Great Expectations first (a file that fails is refused, with
the failures in the task log and a Data Docs report), then each row is produced to `TOPIC_RAW`
keyed by `user_id`; with `kind` carts, stock or reviews, each row is checked by that kind's
contract and sent to its topic (docs/events.md); paced by event time (`speedup` 60 = one hour of data per minute, 0 = as
fast as possible; `limit` = at most this many rows).

**A window of history** (`window_from` and `window_to`, ISO times): the raw topic's messages that
arrived in that window go through the pipeline again with a group-less consumer; the live
consumer group's offsets do not move and what is stored stays (idempotent).
"""

import pendulum
from airflow.sdk import Param, dag, task

from txnmon.airflow import tasks
from txnmon.airflow.notifier import TxnmonNotifier


@dag(
    dag_id="replay_transactions",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["txnmon", "replay"],
    default_args={"retries": 0, "owner": "txnmon",
                  "on_failure_callback": TxnmonNotifier()},
    params={
        "file": Param("sample_transactions.csv", type="string", minLength=1,
                      description="CSV file to replay: a name inside DATA_DIR, or an absolute path under it"),
        "kind": Param("transactions", enum=["transactions", "carts", "stock", "reviews"],
                      description="what the file holds; each kind has its contract and topic (docs/events.md)"),
        "speedup": Param(60.0, type="number", minimum=0,
                         description="event-time pacing: 60 = one hour per minute, 0 = as fast as possible"),
        "limit": Param(None, type=["null", "integer"], minimum=1, description="send at most this many rows"),
        "window_from": Param(None, type=["null", "string"], description="instead of a file: from (ISO time)"),
        "window_to": Param(None, type=["null", "string"], description="... to (ISO time)"),
        "notify": Param(True, type="boolean",
                        description="window only: route new alerts to the notifications outbox (off: a backfill)"),
    },
)
def replay_transactions():
    @task
    def replay(params=None) -> dict:
        return tasks.replay(params)

    replay()


replay_transactions()
