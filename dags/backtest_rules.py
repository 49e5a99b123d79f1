"""
### Backtest a rules change before it goes live

Runs a candidate rules file over the last `hours` of stored transactions, exactly as the
processor would, and compares it with the rules in use: alerts per rule, alerts added and
dropped (with examples). The report lands in `REPORTS_DIR/backtests/` next to the quality
reports and in this task's log. Nothing is changed: applying the file is a separate, reviewed
step (the processor reloads its rules file without a restart).
"""

import pendulum
from airflow.sdk import Param, dag, task

from txnmon.airflow import tasks
from txnmon.airflow.notifier import TxnmonNotifier


@dag(
    dag_id="backtest_rules",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["txnmon", "rules"],
    default_args={"retries": 0, "owner": "txnmon",
                  "on_failure_callback": TxnmonNotifier()},
    params={
        "candidate_rules": Param("rules.yaml", type="string", minLength=1,
                                 description="rules YAML: a name inside RULES_DIR, or an absolute path under it"),
        "hours": Param(24, type="number", exclusiveMinimum=0, description="window of stored data, in hours"),
    },
)
def backtest_rules():
    @task
    def backtest(params=None) -> dict:
        return tasks.backtest(params["candidate_rules"], params["hours"])

    backtest()


backtest_rules()
