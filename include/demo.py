"""`make demo`: the seed sample through the whole pipeline on the local stack, then a summary.

Safe to run again: the processor's writes are idempotent, so counts stay the same.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter

from include import kafka_io, mongo_io, replay
from include.config import SAMPLE_CSV, get_settings


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    settings = get_settings()
    from streaming.processor import Processor

    print(f"1/3 replaying {SAMPLE_CSV.name} to {settings.topic_raw} ...", flush=True)
    summary = replay.replay_csv(settings, SAMPLE_CSV)
    print(f"    {replay.render_summary(summary)}")
    print(f"2/3 processing with consumer group {settings.consumer_group} until the topic is drained ...",
          flush=True)
    processor = Processor(settings)
    processor.run(max_idle_s=3)
    print("3/3 summary")
    db = mongo_io.get_db(settings)
    alerts = Counter(a["rule"] for a in mongo_io.find(db, mongo_io.ALERTS, projection={"rule": 1}))
    dlq = sum(kafka_io.end_offsets(settings, settings.topic_dlq).values())
    print(f"    sent to {settings.topic_raw}:  {summary.rows_sent}")
    print(f"    transactions stored:      {mongo_io.count(db, mongo_io.TRANSACTIONS)} (db {settings.mongo_db})")
    print(f"    rejected to {settings.topic_dlq}: {dlq}")
    print(f"    alerts by rule:           {dict(sorted(alerts.items())) or 'none'}")
    for alert in mongo_io.find(db, mongo_io.ALERTS, sort=[("event_time", 1)], limit=5):
        print(f"      [{alert['severity']}] {alert['rule']}: txn {alert['transaction_id']} "
              f"user {alert['user_id']}: {alert['reason']}")
    print("    next: `make stream` keeps a processor running; `txnmon status` shows lag and counts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
