"""
### Train the learned risk score

Replays a labelled day (a `txnmon generate` file inside DATA_DIR) through the rules' per-user state,
trains a LightGBM model, measures it on a time-based holdout (the last 30% of the day, or a second
day) against the rules' alert count, and registers it in `model_versions` with its checksum.
Nothing is promoted here: `txnmon models promote VERSION` is an explicit, audited step
(docs/model.md). Weekly, and by hand with other files.
"""

import pendulum
from airflow.sdk import Param, dag, task

from txnmon.airflow import tasks
from txnmon.airflow.notifier import TxnmonNotifier


@dag(
    dag_id="train_risk_model",
    schedule="@weekly",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["txnmon", "model"],
    default_args={"retries": 0, "owner": "txnmon", "on_failure_callback": TxnmonNotifier()},
    params={
        "data": Param("training/labelled.csv", type="string", minLength=1,
                      description="labelled CSV inside DATA_DIR: trains (its first 70% without test_data)"),
        "test_data": Param(None, type=["null", "string"], description="a second labelled CSV to test on"),
    },
)
def train_risk_model():
    @task
    def train(params=None) -> dict:
        return tasks.train_model(params["data"], params["test_data"])

    train()


train_risk_model()
