"""The other event kinds of a generated day: `txnmon generate --events carts,stock,reviews --events-dir DIR`
writes `carts.csv`, `stock.csv` and `reviews.csv` next to the transactions, drawn from them
(src/txnmon/synthetic/carts.py, src/txnmon/synthetic/stock_reviews.py). Each file replays with
`txnmon replay --kind carts|stock|reviews`; the transactions file is the same with or without them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from txnmon.synthetic.carts import cart_events
from txnmon.synthetic.spec import GeneratorError, GeneratorSpec
from txnmon.synthetic.stock_reviews import reviews, stock_events

EVENT_FILES = {"carts": "carts.csv", "stock": "stock.csv", "reviews": "reviews.csv"}


def parse_event_kinds(text: str) -> list[str]:
    """`"carts,stock"` -> ["carts", "stock"]; `"all"` -> every kind; an unknown name is refused."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return list(EVENT_FILES)
    unknown = [n for n in names if n not in EVENT_FILES]
    if unknown or not names:
        raise GeneratorError(f"--events {text!r}: expected a comma-separated list of {', '.join(EVENT_FILES)} "
                             "(or all)")
    return list(dict.fromkeys(names))


def generate_events(tx: pd.DataFrame, spec: GeneratorSpec, kinds: Iterable[str]) -> dict[str, pd.DataFrame]:
    """The frames of `kinds` for the transactions `tx` that `generate(spec)` made."""
    start = np.datetime64(spec.start.isoformat(), "s")
    makers = {
        "carts": lambda: cart_events(tx, seed=spec.seed, start=start, days=spec.days),
        "stock": lambda: stock_events(tx, seed=spec.seed, start=start),
        "reviews": lambda: reviews(tx, seed=spec.seed),
    }
    return {kind: makers[kind]() for kind in kinds}


def write_events(frames: dict[str, pd.DataFrame], folder: Path) -> dict[str, Path]:
    """Each frame as its kind's CSV in `folder`; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind, frame in frames.items():
        path = folder / EVENT_FILES[kind]
        frame.to_csv(path, index=False, float_format="%.2f")
        written[kind] = path
    return written
