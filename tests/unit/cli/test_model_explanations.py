"""The model's signal as an analyst sees it: `txnmon alerts show` prints the top contributing features
with the user's baseline, and the case page shows them, escaped (a hostile value is text, not HTML)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from txnmon.cli.desk import print_alert

WHY = {
    "rule": "learned_risk", "typology": True, "rules_version": "2+abc",
    "params": {"signals": {"model_score": 100}, "thresholds": {"medium": 100}},
    "measured": {"score": 100, "signals": "model_score"},
    "signals": [{"signal": "model_score", "weight": 100,
                 "reason": "model rm-1 scored 0.97 (at least 0.8): amount 41,000 is 9.1x this user's median of 4,500",
                 "params": {"threshold": 0.8, "top_features": 3},
                 "measured": {"score": 0.97, "threshold": 0.8, "model_version": "rm-1", "top_features": [
                     {"feature": "amount", "value": 41000.0, "contribution": 2.5,
                      "text": "amount 41,000 is 9.1x this user's median of 4,500"},
                     {"feature": "new_payment_method", "value": 1.0, "contribution": 0.7,
                      "text": "a payment method this user never used before <img src=x onerror=alert(1)>"}]}}],
}
ALERT = {"_id": "T1:learned_risk", "user_id": "U1", "rule": "learned_risk", "severity": "medium", "amount": 41000.0,
         "event_time": dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC), "rules_version": "2+abc",
         "reason": "score 100: model rm-1 scored 0.97", "explanation": WHY, "model_version": "rm-1"}


def test_alerts_show_prints_the_top_factors(capsys):
    print_alert({"alert": ALERT, "collection": "alerts", "counted_transactions": [], "disposition": None, "case": None})
    out = capsys.readouterr().out
    assert "factor amount (+2.5 log-odds): amount 41,000 is 9.1x this user's median of 4,500" in out
    assert "factor new_payment_method (+0.7 log-odds): a payment method this user never used before" in out


def test_the_case_page_shows_the_factors_escaped():
    from txnmon.dashboard.desk import _explain

    shown = _explain(WHY)
    assert "top factors: amount 41,000 is 9.1x this user's median of 4,500; a payment method" in shown
    html = pd.DataFrame([{"explanation": shown}]).to_html(escape=True)  # as desk.table renders it
    assert "<img" not in html and "&lt;img src=x" in html
