"""txnmon: real-time e-commerce transaction monitoring (Kafka, MongoDB, Airflow).

The package's layers, lowest first (tests/unit/test_layers.py keeps imports pointing down):

    errors, settings, logs   the foundation: one error base, settings from the environment, log lines
    core                     pure domain: contract, rules, enrichment, batch step, rollups, cases, quality
    synthetic                labelled synthetic days for demos, benchmarks and backtests
    adapters                 the only importers of client libraries (Kafka, MongoDB, Great Expectations)
    pipeline                 the write side of a batch: ports, sinks in their order, retry, the Kafka transaction
    jobs                     use cases: settings in, summary out
    notifications            routes, outbox, channels and the delivery worker, one slice
    services                 the long-running processor
    cli, dashboard, airflow  entry points (the `txnmon` command, the Streamlit app, what the DAGs call)

The names below are what a user of the library reaches for (a notebook backtesting rules, a shop
validating a message before it sends it); everything else is reached by its module path. They load
on first use, so `import txnmon` stays light.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Any

try:
    __version__ = metadata.version("txnmon")
except metadata.PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_EXPORTS = {
    "Settings": "txnmon.settings",  # every setting, from the environment
    "load_settings": "txnmon.settings",
    "TxnmonError": "txnmon.errors",  # the one error base
    "parse_transaction": "txnmon.core.contract",  # one message -> a transaction or a rejection
    "Detector": "txnmon.core.rules",  # the rules over a user's history, live and offline
    "load_rules": "txnmon.core.rules",
    "run_backtest": "txnmon.core.backtest",  # rules over history: alerts, recall and precision
}
__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'txnmon' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
