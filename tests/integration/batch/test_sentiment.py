"""Review sentiment on MongoDB: reviews stored as `txnmon events` stores them (normalise_review), walked
with explicit closed times. One product turning negative raises exactly one alert; a clean day none;
walking in other pieces, or again from scratch, writes the same documents."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from txnmon.adapters.mongo import LeasesRepository, MongoStore
from txnmon.core.collection_names import OPS_ALERTS, REVIEW_SCORES, REVIEWS, SENTIMENT_HOUR, SENTIMENT_STATE
from txnmon.core.event_contracts import normalise_review
from txnmon.core.sentiment import SENTIMENT_DROP
from txnmon.jobs import sentiment
from txnmon.synthetic.stock_reviews import TEXTS

pytestmark = [pytest.mark.integration]

T0 = dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(days=30)
PRODUCTS = ("Kettle", "Air Fryer", "T-Shirt")
# a short window and baseline keep the data small: two days of reviews, a review every 20 minutes a product
OVERRIDES = {"sentiment_window_hours": 6, "sentiment_baseline_days": 1, "sentiment_min_reviews": 5,
             "sentiment_drop": 0.4}


def _reviews(turns_bad_at: dt.datetime | None) -> list[dict]:
    out = []
    for i in range(2 * 72):
        at = T0 + i * dt.timedelta(minutes=20)
        for j, product in enumerate(PRODUCTS):
            bad = turns_bad_at is not None and product == "Kettle" and at >= turns_bad_at
            rating = 1 if bad else 4 + (i + j) % 2
            raw = {"review_id": f"R-{i:04d}-{j}", "user_id": f"U{(i * 7 + j) % 50}", "product_id": product,
                   "rating": rating, "text": TEXTS[rating][(i + j) % 3], "timestamp": at.isoformat()}
            out.append(normalise_review(raw, zone=ZoneInfo("UTC"), now=NOW))
    return out


def _stored(store: MongoStore) -> dict[str, dict]:
    """Everything the job writes, by collection and _id (the state's wall-clock stamp left out)."""
    state = store.find_one(SENTIMENT_STATE, {"_id": "sentiment"}) or {}
    return {"scores": {d["_id"]: d for d in store.find(REVIEW_SCORES)},
            "hours": {d["_id"]: d for d in store.find(SENTIMENT_HOUR)},
            "alerts": {d["_id"]: d for d in store.find(OPS_ALERTS)},
            "state": {k: v for k, v in state.items() if k != "updated_at"}}


def _walk(store: MongoStore, settings, cuts: list[dt.datetime]) -> list[sentiment.SentimentRun]:
    return [sentiment.run_sentiment(store, settings, closed_until=cut, trigger="test") for cut in cuts]


def test_a_product_turning_negative_raises_exactly_one_alert_and_a_rewalk_writes_the_same(settings_factory):
    settings = settings_factory(create_topics=False, **OVERRIDES)
    store = MongoStore(settings)
    store.ensure_indexes()
    store.insert_missing(REVIEWS, _reviews(turns_bad_at=T0 + dt.timedelta(hours=36)))
    end = T0 + dt.timedelta(hours=48)

    # in uneven pieces, one of them twice and one inside an hour, as the events service would call it
    runs = _walk(store, settings, [T0 + dt.timedelta(hours=5, minutes=30), T0 + dt.timedelta(hours=20),
                                   T0 + dt.timedelta(hours=20), T0 + dt.timedelta(hours=37, minutes=10), end])
    first = _stored(store)

    alerts = list(first["alerts"].values())
    assert len(alerts) == 1, alerts
    (alert,) = alerts
    assert alert["kind"] == SENTIMENT_DROP and alert["product_id"] == "Kettle"
    assert alert["baseline"] > 0.4 and alert["recent"] <= alert["baseline"] - 0.4
    assert alert["reviews"] >= 5 and alert["baseline_reviews"] >= 5
    assert T0 + dt.timedelta(hours=36) < alert["opened_at"] <= T0 + dt.timedelta(hours=40)
    assert [a["_id"] for r in runs for a in r.opened] == [alert["_id"]]  # reported once, by the run that saw it
    assert runs[2].hours == 0 and runs[-1].decided_until == end
    assert len(first["scores"]) == 3 * 2 * 72  # every review scored once
    assert sum(d["reviews"] for d in first["hours"].values()) == 3 * 2 * 72
    kettle = first["hours"][f"{T0 + dt.timedelta(hours=40):%Y-%m-%dT%H}|Kettle"]
    assert kettle["mean_rating"] == 1.0 and kettle["share_negative"] >= 2 / 3

    # a re-walk from scratch (the outputs and the state gone, the scores kept) writes the same documents
    for name in (SENTIMENT_HOUR, OPS_ALERTS, SENTIMENT_STATE):
        store.db[name].delete_many({})
    rewalk = _walk(store, settings, [end])
    assert rewalk[0].scored == 0  # no review is scored twice
    assert _stored(store) == first


def test_a_clean_day_raises_no_alert(settings_factory):
    settings = settings_factory(create_topics=False, **OVERRIDES)
    store = MongoStore(settings)
    store.ensure_indexes()
    stray = normalise_review({"review_id": "R-early", "user_id": "U1", "product_id": "Kettle", "rating": 2,
                              "text": TEXTS[2][0], "timestamp": "2024-06-01T10:15:00Z"}, zone=ZoneInfo("UTC"), now=NOW)
    store.insert_missing(REVIEWS, [*_reviews(turns_bad_at=None), stray])  # a stray review 16 months earlier
    # a closed time ahead of the wall clock (an event dated tomorrow) decides no hour that has not ended
    early = sentiment.run_sentiment(store, settings, closed_until=T0 + dt.timedelta(hours=48),
                                    clock=lambda: T0 + dt.timedelta(hours=10, minutes=30))
    assert early.decided_until == T0 + dt.timedelta(hours=10)
    # while another run holds the lease, a run waits its turn
    assert LeasesRepository(store).acquire("sentiment", "other", NOW, NOW + dt.timedelta(minutes=5))
    with pytest.raises(sentiment.SentimentBusy):
        sentiment.run_sentiment(store, settings, closed_until=T0 + dt.timedelta(hours=48), clock=lambda: NOW)
    LeasesRepository(store).release("sentiment", "other")
    (run,) = _walk(store, settings, [T0 + dt.timedelta(hours=48)])
    assert run.opened == [] and run.open_now == 0 and run.hours == 38
    assert run.decided_until == T0 + dt.timedelta(hours=48) and early.scored + run.scored == 3 * 2 * 72 + 1
    assert store.count(OPS_ALERTS) == 0
    assert store.count(SENTIMENT_HOUR) == 3 * 48 + 1


class LeaseAtEachRead(MongoStore):
    """Notes, for each read of review texts by id, the id list's length and the lease's renewal time."""

    reads: list[tuple[int, dt.datetime]]

    def find(self, collection, query=None, **kw):
        ids = (query or {}).get("_id")
        if collection == REVIEWS and isinstance(ids, dict) and "$in" in ids:
            lease = self.db["leases"].find_one({"_id": sentiment.LEASE})
            self.reads.append((len(ids["$in"]), lease["renewed_at"]))
        return super().find(collection, query, **kw)


def test_a_days_reviews_are_scored_in_bounded_chunks_with_the_lease_renewed_before_each(settings_factory, monkeypatch):
    monkeypatch.setattr(sentiment, "IN_CHUNK", 50, raising=False)
    settings = settings_factory(create_topics=False, **OVERRIDES)
    store = LeaseAtEachRead(settings)
    store.reads = []
    store.ensure_indexes()
    store.insert_missing(REVIEWS, _reviews(turns_bad_at=None))
    ticks = iter(NOW + dt.timedelta(seconds=i) for i in range(100_000))
    run = sentiment.run_sentiment(store, settings, closed_until=T0 + dt.timedelta(hours=48), clock=lambda: next(ticks))
    assert run.scored == 3 * 2 * 72
    assert len(store.reads) >= 2 * (3 * 72 // 50) and all(n <= 50 for n, _ in store.reads)
    renewals = [at for _, at in store.reads]
    assert len(set(renewals)) == len(renewals)  # a fresh renewal before each chunk
