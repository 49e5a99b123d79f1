"""Which weight the risk model earns in the typologies: train on one or more labelled generated days, then on
each held-out day backtest the rules alone and the rules with `model_score` weighed (a grid of
threshold, weight and threshold raise, src/txnmon/core/model_report.py), per pattern and per clean
behaviour. No MongoDB: the model is fitted in this process as `txnmon models train` fits it.

    python bench/model_weight.py --train A.csv [--train A2.csv ...] --test B.csv --test C.csv \
        [--grid 0.5:30:0 0.2:30:30:card_testing,refund_abuse ...]
"""

from __future__ import annotations

import argparse
import json
import os
from zoneinfo import ZoneInfo

os.environ.setdefault("OMP_NUM_THREADS", "1")

from txnmon.core import backtest, boosting, model_report, risk_model
from txnmon.core.rules import load_rules
from txnmon.jobs.backtest import load_transactions
from txnmon.jobs.models import LoadedModel
from txnmon.settings import DEFAULT_RULES_FILE

GRID = ("0.5:30:0", "0.8:30:0", "0.5:30:30", "0.2:30:30", "0.1:30:30", "0.5:20:10", "0.2:20:10", "0.1:20:10")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", action="append", required=True, help="a labelled day to fit on (repeat: all of them)")
    ap.add_argument("--test", action="append", required=True)
    ap.add_argument("--rules", default=str(DEFAULT_RULES_FILE))
    ap.add_argument("--grid", nargs="*", default=list(GRID), help="threshold:weight:raise_by[:typology,...]")
    ap.add_argument("--json", default=None, help="write every comparison here")
    args = ap.parse_args()
    zone = ZoneInfo("UTC")
    rules = load_rules(args.rules)
    rows, labels = [], []
    for train in args.train:  # each day replayed through its own state, as `txnmon models train` replays a file
        train_txs, _ = load_transactions(train, zone)
        data = risk_model.training_set(train_txs, rules)
        rows += data.rows
        labels += data.labels
    model = LoadedModel("bench", boosting.fit(rows, labels), {})
    out = []
    for test in args.test:
        txs, rejected = load_transactions(test, zone)
        base = backtest.to_json(backtest.run_backtest(txs, rules, rejected))["quality"]
        for spec in args.grid:
            threshold, weight, raise_by = (float(x) for x in spec.split(":")[:3])
            named = spec.split(":")[3].split(",") if spec.count(":") == 3 else None
            hybrid_rules = model_report.weigh_model(rules, threshold, weight, raise_by, named)
            hybrid = backtest.to_json(backtest.run_backtest(txs, hybrid_rules, rejected, model=model))["quality"]
            doc = model_report.detection_comparison(base, hybrid)
            o = doc["overall"]
            print(f"{test} {spec}: caught {o['rules_caught']} -> {o['model_caught']} of {o['incidents']}, "
                  f"false {o['rules_false']} -> {o['model_false']}, "
                  f"every pattern kept {o['recall_kept_on_every_pattern']}",
                  flush=True)
            out.append({"test": test, "grid": spec, **doc})
            print(model_report.render_comparison(doc), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
