"""
### KPI rollups

Every 5 minutes, recompute the event-time buckets touched by transactions processed (and
alerts raised) during the data interval, with MongoDB aggregation pipelines that `$merge`
into the `kpi_*` collections (see docs/rollups.md). Re-running or backfilling an interval
recomputes the same buckets and changes nothing. Param `full_rebuild` recomputes everything.
"""

import pendulum
from airflow.sdk import CronDataIntervalTimetable, Param, dag, task

from include.jobs.rollups import rollup_interval


@dag(
    dag_id="kpi_rollups",
    schedule=CronDataIntervalTimetable("*/5 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["txnmon", "kpi"],
    default_args={"retries": 2, "retry_delay": pendulum.duration(seconds=30), "owner": "txnmon"},
    params={"full_rebuild": Param(False, type="boolean", description="recompute every bucket")},
)
def kpi_rollups():
    @task
    def rollup(data_interval_start=None, data_interval_end=None, params=None) -> dict:
        return rollup_interval(data_interval_start, data_interval_end, params["full_rebuild"])

    rollup()


kpi_rollups()
