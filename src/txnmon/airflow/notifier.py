"""The DAGs' notifier: a task that fails for good (or a DAG run that fails) notifies the same
destinations as the alerts, through Airflow's notifier mechanism (`BaseNotifier`).

Every txnmon DAG sets `on_failure_callback=TxnmonNotifier()` in its default_args. The notifier does not
send anything itself: it puts one event into the notifications outbox (routed by the routes file,
events `dag_failed` or, when the task failed because a data-quality suite did, `quality_failed`), and
`txnmon notify` delivers it with the same retries, rate limits and dead letters as the alerts. The
event id comes from the DAG, the run and the task, so a callback that runs twice queues it once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseNotifier

from txnmon.airflow.connections import task_settings
from txnmon.errors import QualityCheckFailed, TxnmonError
from txnmon.notifications.routes import DAG_FAILED, QUALITY_FAILED

log = logging.getLogger("txnmon.notify")


def failure_event(context: Mapping[str, Any]) -> dict[str, Any]:
    """What a failure callback's context says, as the arguments of `notify_pipeline_event`."""
    ti = context.get("task_instance") or context.get("ti")
    dag = context.get("dag")
    dag_run = context.get("dag_run")
    dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", "?")
    run_id = context.get("run_id") or getattr(dag_run, "run_id", None) or getattr(ti, "run_id", "?")
    task_id = getattr(ti, "task_id", None)
    exception = context.get("exception")
    if _is_quality_failure(getattr(exception, "__cause__", None)):
        exception = exception.__cause__  # tasks.quality fails at once: the suite's failure is the news
    quality = _is_quality_failure(exception)
    kind = QUALITY_FAILED if quality else DAG_FAILED
    where = f"{dag_id}.{task_id}" if task_id else str(dag_id)
    title = (f"data-quality suite failed in {where}" if quality else f"Airflow task failed: {where}")
    reason = context.get("reason") or "the run failed"  # a DAG-level callback has a reason, no exception
    detail = f"{type(exception).__name__}: {exception}" if exception is not None else str(reason)
    fields: dict[str, Any] = {"dag_id": dag_id, "run_id": run_id}
    if task_id:
        fields["task_id"] = task_id
        fields["try_number"] = getattr(ti, "try_number", None)
    event_id = ":".join(str(p) for p in (kind, dag_id, run_id, task_id) if p)
    return {"kind": kind, "event_id": event_id, "title": title, "detail": detail, **fields}


def _is_quality_failure(exception: BaseException | None) -> bool:
    # by name too: a task runner may hand over a re-created exception of another class object
    return isinstance(exception, QualityCheckFailed) or type(exception).__name__ == "QualityCheckFailed"


class TxnmonNotifier(BaseNotifier):
    """on_failure_callback of the txnmon DAGs: the failure into the notifications outbox."""

    def notify(self, context: Any) -> None:
        from txnmon.notifications.outbox import (
            notify_pipeline_event,  # when a task fails, not when a DAG file is parsed
        )

        event = failure_event(context)
        try:
            ids = notify_pipeline_event(task_settings(), event.pop("kind"), event.pop("event_id"), **event)
        except TxnmonError as exc:
            # a callback must not hide the task's own failure; the log says the notification is missing
            log.error("the failure could not be queued for notification: %s", exc.describe())
            return
        log.info("failure queued for notification: %s", ", ".join(ids) or "no route for it")
