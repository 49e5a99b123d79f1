"""`txnmon status`: is the stack healthy, how far behind is the processor, what is stored."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from txnmon.adapters import kafka
from txnmon.adapters.mongo import MongoStore
from txnmon.core import health
from txnmon.core.collection_names import ALERTS, TRANSACTIONS
from txnmon.errors import TxnmonError
from txnmon.jobs import rollups
from txnmon.notifications import outbox
from txnmon.settings import Settings

THROUGHPUT_WINDOW_S = 60


def _kafka_sample(settings: Settings) -> dict[str, Any]:
    """One look at Kafka: topic sizes, the group's members and its lag on the topics it reads."""
    topics = [settings.topic_raw, settings.topic_by_user, settings.topic_enriched, settings.topic_dlq]
    sizes = {t: sum(kafka.end_offsets(settings, t).values()) for t in topics}
    group = kafka.describe_group(settings, settings.consumer_group)
    lag = {t: kafka.consumer_lag(settings, settings.consumer_group, t) for t in (settings.topic_raw,
                                                                                 settings.topic_by_user)}
    return {"topics": sizes, "group": group, "lag": lag}


def collect(settings: Settings, interval_s: float = 0.0, sleep: Callable[[float], None] = time.sleep,
            thresholds: health.Thresholds | None = None) -> dict[str, Any]:
    """Everything `txnmon status` shows, and the verdict. With `interval_s` > 0 Kafka is sampled twice
    that far apart, so growth (of lag, of the DLQ) is seen, not guessed."""
    report: dict[str, Any] = {"healthy": True, "kafka": {}, "mongo": {}}
    first = last = None
    kafka_error = None
    try:
        report["kafka"]["bootstrap"] = settings.kafka_bootstrap_servers
        first = last = _kafka_sample(settings)
        if interval_s > 0:
            sleep(interval_s)
            last = _kafka_sample(settings)
        group = last["group"]
        report["kafka"]["topics"] = last["topics"]
        report["kafka"]["consumer_group"] = settings.consumer_group
        report["kafka"]["group_state"] = group.state
        report["kafka"]["members"] = [{"client_id": m.client_id, "host": m.host,
                                       "partitions": [f"{t}[{p}]" for t, p in m.partitions]} for m in group.members]
        report["kafka"]["lag_by_topic"] = last["lag"]
        report["kafka"]["lag_by_partition"] = last["lag"][settings.topic_raw]
        report["kafka"]["lag"] = health.total(last["lag"])
        report["kafka"]["sample_s"] = interval_s
        report["kafka"]["lag_growth"] = health.total(last["lag"]) - health.total(first["lag"])
        report["kafka"]["dlq_growth"] = last["topics"][settings.topic_dlq] - first["topics"][settings.topic_dlq]
    except (TxnmonError, kafka.KafkaError) as exc:
        kafka_error = str(exc)
        report["kafka"]["error"] = kafka_error
    mongo_error = None
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
        mongo_error = str(exc).split(",")[0]
        report["mongo"]["error"] = mongo_error
    kpi_as_of = kpi_pending = None
    notify_dead = notify_due = None
    if mongo_error is None:
        try:
            report["notifications"] = outbox.outbox_counts(MongoStore(settings))
            notify_dead = report["notifications"]["dead"]
            notify_due = report["notifications"]["oldest_due"] = outbox.oldest_due(MongoStore(settings))
        except TxnmonError as exc:
            report["notifications"] = {"error": str(exc).split(",")[0]}
        try:
            report["kpis"] = rollups.freshness(MongoStore(settings))
            kpi_pending = report["kpis"]["pending_batches"]
            kpi_as_of = (report["kpis"]["last_run"] or {}).get("as_of")
        except TxnmonError as exc:
            report["kpis"] = {"error": str(exc).split(",")[0]}
    observation = health.Observation(
        now=dt.datetime.now(dt.UTC), interval_s=interval_s, kafka_error=kafka_error, mongo_error=mongo_error,
        group=settings.consumer_group, members=len(last["group"].members) if last else 0,
        lag_first=first["lag"] if first else {}, lag_last=last["lag"] if last else {},
        raw_first=first["topics"][settings.topic_raw] if first else 0,
        raw_last=last["topics"][settings.topic_raw] if last else 0,
        dlq_first=first["topics"][settings.topic_dlq] if first else 0,
        dlq_last=last["topics"][settings.topic_dlq] if last else 0,
        kpi_as_of=_aware(kpi_as_of), kpi_pending=kpi_pending, notify_dead=notify_dead,
        notify_oldest_due=_aware(notify_due))
    verdict = health.judge(observation, thresholds)
    report["verdict"] = verdict.as_dict()
    report["healthy"] = verdict.healthy
    return report


def _aware(t: Any) -> dt.datetime | None:
    if not isinstance(t, dt.datetime):
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def render(report: dict[str, Any]) -> str:
    k, m = report["kafka"], report["mongo"]
    verdict = report.get("verdict", {"state": "healthy" if report["healthy"] else "unhealthy", "problems": []})
    lines = [f"txnmon status: {verdict['state'].upper() if verdict['state'] != 'healthy' else 'healthy'}"]
    lines += [f"  {p['severity'].upper():<8} {p['check']}: {p['message']}" for p in verdict["problems"]]
    if "error" in k:
        lines.append(f"  kafka   DOWN  {k['error']}")
    else:
        lines.append(f"  kafka   up    {k['bootstrap']}")
        for topic, n in k["topics"].items():
            lines.append(f"          {topic:<28} {n:>10,} messages")
        members = k.get("members", [])
        lines.append(f"          group {k['consumer_group']} ({k.get('group_state', '?').lower()}): "
                     f"{len(members)} member(s)")
        for m in members:
            owned = ", ".join(m["partitions"]) or "no partitions"
            lines.append(f"            {m['client_id']} on {m['host']}: {owned}")
        for topic, parts in k.get("lag_by_topic", {"raw": k["lag_by_partition"]}).items():
            by = "  ".join(f"[{p}] {n:,}" for p, n in sorted(parts.items())) or "no partitions"
            lines.append(f"          lag {topic:<24} {sum(parts.values()):>10,}   {by}")
        if k.get("sample_s"):
            lines.append(f"          in {k['sample_s']:g}s: lag {k['lag_growth']:+,}, DLQ {k['dlq_growth']:+,}")
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
    n = report.get("notifications")
    if n is not None:
        if "error" in n:
            lines.append(f"  notify  unknown  {n['error']}")
        else:
            due = f" (the first due since {_when(n['oldest_due'])})" if n.get("oldest_due") else ""
            lines.append(f"  notify  {n['pending']:,} pending{due}, {n['dead']:,} dead-lettered"
                         + (" (`txnmon notify --list-dead`)" if n["dead"] else ""))
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
