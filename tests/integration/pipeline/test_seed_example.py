"""Issue #28 through the real pipeline: the seed report's own example ("a purchase from an unusual
country" far above the user's usual amount) raises an alert with the user's usual payment method
(medium) and with a new one (high), also for a user with a single earlier purchase; and a purchase at
home that arrives after the impossible one abroad completes the alert on the one abroad."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.fixtures.pipeline import T0, produce, run_until_idle, tx_row
from txnmon.adapters.mongo import MongoStore
from txnmon.core.collection_names import ALERTS

pytestmark = [pytest.mark.integration]


def at(hours: float) -> dt.datetime:
    return T0 + dt.timedelta(hours=hours)


def test_the_seed_reports_example_and_a_late_pair_alert_through_the_processor(settings_factory):
    s = settings_factory()
    rows = []
    for user in ("USUAL", "NEWCARD"):  # three purchases at home with UPI, then 40,000 in London half a day later
        rows += [tx_row(f"{user}-{i}", user, at(i), 1_000.0 + 50 * i) for i in range(3)]
    rows += [tx_row("USUAL-abroad", "USUAL", at(14), 40_000.0, "London"),
             tx_row("NEWCARD-abroad", "NEWCARD", at(14), 40_000.0, "London", payment_method="Credit Card"),
             tx_row("THIN-0", "THIN", at(0), 900.0, "Delhi"),   # one earlier purchase is all there is
             tx_row("THIN-abroad", "THIN", at(13), 38_000.0, "New York"),
             # the purchase abroad arrives first; the one at home 40 minutes before it arrives late
             tx_row("LATE-abroad", "LATE", at(2), 3_000.0, "Singapore"),
             tx_row("LATE-home", "LATE", at(2) - dt.timedelta(minutes=40), 800.0, "Mumbai")]
    produce(s, rows)
    run_until_idle(s)

    alerts = {d["_id"]: d for d in MongoStore(s).find(ALERTS)}
    assert alerts["USUAL-abroad:high_value_new_country"]["severity"] == "medium"
    assert alerts["NEWCARD-abroad:high_value_new_country"]["severity"] == "high"
    assert alerts["THIN-abroad:high_value_new_country"]["severity"] == "medium"
    assert "40,000" in alerts["USUAL-abroad:high_value_new_country"]["reason"]
    late = alerts["LATE-abroad:impossible_travel"]
    assert late["transaction_id"] == "LATE-abroad" and late["completed_by"] == "LATE-home"
    assert late["location"] == "Singapore"
    assert not any(a.startswith(("USUAL-0", "USUAL-1", "USUAL-2", "THIN-0", "LATE-home:")) for a in alerts)
