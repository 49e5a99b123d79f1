"""
### Replay a CSV file of transactions into Kafka

Checks the file with Great Expectations first (a file that fails is refused, with the failures
in the task log and a Data Docs report), then produces each row to `TOPIC_RAW` keyed by
`user_id`, paced by event time.

Params: `file` (relative to the repo or absolute), `speedup` (60 = one hour of data per
minute, 0 = as fast as possible), `limit` (optional row count).
"""

import pendulum
from airflow.sdk import Param, dag, task

from include import jobs


@dag(
    dag_id="replay_transactions",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["txnmon", "replay"],
    default_args={"retries": 0, "owner": "txnmon"},
    params={
        "file": Param("include/data/sample_transactions.csv", type="string", minLength=1,
                      description="CSV file to replay, relative to the repository or absolute"),
        "speedup": Param(60.0, type="number", minimum=0,
                         description="event-time pacing: 60 = one hour per minute, 0 = as fast as possible"),
        "limit": Param(None, type=["null", "integer"], minimum=1, description="send at most this many rows"),
    },
)
def replay_transactions():
    @task
    def validate_file(params=None) -> dict:
        return jobs.validate_replay_file(params["file"])

    @task
    def produce(checked: dict, params=None) -> dict:
        return jobs.replay_file(checked["file"], params["speedup"], params["limit"])

    produce(validate_file())


replay_transactions()
