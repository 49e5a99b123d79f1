"""`txnmon status`: is the stack healthy, how far behind is the processor, what is stored."""

from __future__ import annotations

import datetime as dt
from typing import Any

from include import kafka_io, mongo_io
from include.config import Settings

THROUGHPUT_WINDOW_S = 60


def collect(settings: Settings) -> dict[str, Any]:
    report: dict[str, Any] = {"healthy": True, "kafka": {}, "mongo": {}}
    try:
        topics = [settings.topic_raw, settings.topic_enriched, settings.topic_dlq]
        report["kafka"]["bootstrap"] = settings.kafka_bootstrap_servers
        report["kafka"]["topics"] = {
            t: sum(kafka_io.end_offsets(settings, t).values()) for t in topics
        }
        lag = kafka_io.consumer_lag(settings, settings.consumer_group, settings.topic_raw)
        report["kafka"]["consumer_group"] = settings.consumer_group
        report["kafka"]["lag_by_partition"] = lag
        report["kafka"]["lag"] = sum(lag.values())
    except (kafka_io.KafkaUnavailable, kafka_io.KafkaError) as exc:
        report["healthy"] = False
        report["kafka"]["error"] = str(exc)
    try:
        db = mongo_io.get_db(settings)
        report["mongo"].update(mongo_io.ping(db))
        report["mongo"]["database"] = settings.mongo_db
        report["mongo"]["counts"] = {
            c: mongo_io.count(db, c) for c in (mongo_io.TRANSACTIONS, mongo_io.ALERTS)
        }
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=THROUGHPUT_WINDOW_S)
        recent = mongo_io.count(db, mongo_io.TRANSACTIONS, {"processed_time": {"$gte": since}})
        report["mongo"]["stored_last_minute"] = recent
        report["mongo"]["throughput_tx_per_s"] = round(recent / THROUGHPUT_WINDOW_S, 1)
    except (mongo_io.MongoUnavailable, mongo_io.PyMongoError) as exc:
        report["healthy"] = False
        report["mongo"]["error"] = str(exc).split(",")[0]
    return report


def render(report: dict[str, Any]) -> str:
    k, m = report["kafka"], report["mongo"]
    lines = [f"txnmon status: {'healthy' if report['healthy'] else 'DEGRADED'}"]
    if "error" in k:
        lines.append(f"  kafka   DOWN  {k['error']}")
    else:
        lines.append(f"  kafka   up    {k['bootstrap']}")
        for topic, n in k["topics"].items():
            lines.append(f"          {topic:<28} {n:>10,} messages")
        lines.append(f"          group {k['consumer_group']}: lag {k['lag']:,} "
                     f"(by partition {k['lag_by_partition']})")
    if "error" in m:
        lines.append(f"  mongodb DOWN  {m['error']}")
    else:
        lines.append(f"  mongodb up    version {m['version']} (wire {m['maxWireVersion']}), db {m['database']}")
        for coll, n in m["counts"].items():
            lines.append(f"          {coll:<28} {n:>10,} documents")
        lines.append(f"          stored in the last minute: {m['stored_last_minute']:,} "
                     f"({m['throughput_tx_per_s']:,} tx/s)")
    return "\n".join(lines)
