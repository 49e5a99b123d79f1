"""
### KPI rollups

Every 5 minutes (or whenever triggered), recompute the event-time hours touched by every batch
the processor has stored since the last successful run, and write the `kpi_*` collections (see
docs/rollups.md). What a run covers comes from the pending entries in MongoDB's `touched_hours`
(one per stored batch), not from the data interval: a manual trigger includes everything stored
so far, and runs missed while the scheduler was down or batches delayed by an outage are caught
up by the next run. Each run is recorded in `kpi_runs`. Re-running changes nothing. Param
`full_rebuild` recomputes everything there is. Then `signals` decides payment-health alerts and
trends on the 5-minute buckets event time has closed (docs/signals.md).
"""

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from txnmon.airflow import tasks
from txnmon.airflow.notifier import TxnmonNotifier


@dag(
    dag_id="kpi_rollups",
    schedule=CronDataIntervalTimetable("*/5 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,  # nothing is lost by skipping intervals: the pending entries carry the work
    max_active_runs=1,
    doc_md=__doc__,
    tags=["txnmon", "kpi"],
    # a hung try (a stalled MongoDB) fails after an hour and is retried; the last try's failure notifies.
    # Without it max_active_runs=1 would queue every later run behind the hung one in silence
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=30), "owner": "txnmon",
                  "execution_timeout": pendulum.duration(hours=1), "on_failure_callback": TxnmonNotifier()},
    params={"full_rebuild": Param(False, type="boolean", description="recompute every bucket")},
)
def kpi_rollups():
    @task
    def rollup(params=None) -> dict:
        return tasks.rollup(params["full_rebuild"])

    @task
    def signals() -> dict:
        return tasks.signals()

    rollup() >> signals()


kpi_rollups()
