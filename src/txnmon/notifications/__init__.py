"""Notifications, one slice from the routes file to the receiver.

    routes     pure: the routes file, which events go where, the outbox entries they become
    messages   pure: the signed webhook body, the chat message, the mail
    policy     pure: backoff with jitter, Retry-After, final answers, the shared rate limit
    channels   adapter: webhook, chat and mail behind one `Channel` interface (HTTP and SMTP clients)
    outbox     use cases: the routes feed, events into the outbox, counts, dead letters, resend
    worker     the long-running `txnmon notify` delivery worker

The processor's alerts enter the outbox through `pipeline.sinks.NotificationsSink`, in the batch's
own writes; the DAGs' failures through `txnmon.airflow.notifier` (Airflow's home in the package).
"""
