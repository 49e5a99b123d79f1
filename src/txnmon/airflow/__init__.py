"""txnmon inside Airflow: what the DAG files in dags/ call, and nothing else imports.

    connections   a task's settings, Kafka and MongoDB from the Airflow connections when defined
    tasks         one function per DAG task: settings built there and passed in, a summary out
    notifier      `TxnmonNotifier`, the DAGs' on_failure_callback (a failure into the outbox)

Like an Airflow provider, this is the only part of the package that imports Airflow; the jobs
under it know nothing of it. Airflow is imported when a task runs, so parsing a DAG file stays light.
"""
