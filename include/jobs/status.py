"""`txnmon status`: is the stack healthy, how far behind is the processor, what is stored."""

from __future__ import annotations

import datetime as dt
from typing import Any

from include.config import Settings
from include.connectors import kafka
from include.connectors.mongo import MongoStore
from include.core.collection_names import ALERTS, TRANSACTIONS
from include.errors import TxnmonError
from include.jobs import rollups

THROUGHPUT_WINDOW_S = 60


def collect(settings: Settings) -> dict[str, Any]:
    report: dict[str, Any] = {"healthy": True, "kafka": {}, "mongo": {}}
    try:
        topics = [settings.topic_raw, settings.topic_by_user, settings.topic_enriched, settings.topic_dlq]
        report["kafka"]["bootstrap"] = settings.kafka_bootstrap_servers
        report["kafka"]["topics"] = {
            t: sum(kafka.end_offsets(settings, t).values()) for t in topics
        }
        lag = kafka.consumer_lag(settings, settings.consumer_group, settings.topic_raw)
        report["kafka"]["consumer_group"] = settings.consumer_group
        report["kafka"]["lag_by_partition"] = lag
        report["kafka"]["lag"] = sum(lag.values())
    except (TxnmonError, kafka.KafkaError) as exc:
        report["healthy"] = False
        report["kafka"]["error"] = str(exc)
    try:
        store = MongoStore(settings)
        report["mongo"].update(store.ping())
        report["mongo"]["database"] = settings.mongo_db
        report["mongo"]["counts"] = {
            c: store.count(c) for c in (TRANSACTIONS, ALERTS)
        }
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=THROUGHPUT_WINDOW_S)
        recent = store.count(TRANSACTIONS, {"processed_time": {"$gte": since}})
        report["mongo"]["stored_last_minute"] = recent
        report["mongo"]["throughput_tx_per_s"] = round(recent / THROUGHPUT_WINDOW_S, 1)
    except TxnmonError as exc:
        report["healthy"] = False
        report["mongo"]["error"] = str(exc).split(",")[0]
    if "error" not in report["mongo"]:
        try:
            report["kpis"] = rollups.freshness(MongoStore(settings))
        except TxnmonError as exc:
            report["kpis"] = {"error": str(exc).split(",")[0]}
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
    if "kpis" in report:
        lines.extend(_render_kpis(report["kpis"]))
    return "\n".join(lines)


def _when(t: Any) -> str:
    return f"{t:%Y-%m-%d %H:%M:%S} UTC" if isinstance(t, dt.datetime) else "never"


def _render_kpis(kpis: dict[str, Any]) -> list[str]:
    """Freshness of the kpi_* collections: as of when, and what is still waiting to be rolled up."""
    if "error" in kpis:
        return [f"  kpis    unknown  {kpis['error']}"]
    pending = f"{kpis['pending_batches']:,} stored batch(es) waiting for the next run"
    last = kpis["last_run"]
    if last is None:
        return [f"  kpis    no successful rollup run yet; {pending} (`txnmon rollups`)"]
    lines = [f"  kpis    as of {_when(last['as_of'])} (every batch stored before is included); {pending}",
             f"          last run {last['_id']}: {last.get('hours_recomputed', 0):,} hour(s), "
             f"{last.get('entries_consumed', 0):,} batch(es), mark {_when(last.get('mark'))}"]
    for name, fresh in kpis["collections"].items():
        lines.append(f"          {name:<28} last success {_when((fresh or {}).get('last_success'))}")
    return lines
