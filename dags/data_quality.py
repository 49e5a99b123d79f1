"""
### Data quality

Hourly Great Expectations suites (src/txnmon/data/quality/suites.yaml) over the transactions
processed and the alerts raised in the data interval. Writes the HTML report (Data Docs)
under `REPORTS_DIR/quality/`, a summary per suite in the `quality_reports` collection, and
fails the run when a critical expectation fails (at once for the transactions and alerts suites:
a retry would read the same rows; the pipeline suite and outages keep the retry); the failure is
queued as a `quality_failed` notification for the routes' destinations (docs/notifications.md).

Beside it, `model_drift` compares the promoted risk model's scores of the last complete UTC day with
the reference registered at training (PSI, docs/model.md), once per version and day; above 0.25 it
queues a `quality_failed` notification. It runs whether or not the suites pass.
"""

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, task

from txnmon.airflow import tasks
from txnmon.airflow.notifier import TxnmonNotifier


@dag(
    dag_id="data_quality",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["txnmon", "quality"],
    default_args={"retries": 1, "retry_delay": pendulum.duration(minutes=2), "owner": "txnmon",
                  "execution_timeout": pendulum.duration(minutes=25),  # both tries end before the next hour
                  "on_failure_callback": TxnmonNotifier()},
)
def data_quality():
    @task
    def check(data_interval_start=None, data_interval_end=None) -> list:
        return tasks.quality(data_interval_start, data_interval_end)

    @task
    def model_drift(data_interval_end=None) -> dict:
        return tasks.model_drift(data_interval_end)

    check()
    model_drift()


data_quality()
