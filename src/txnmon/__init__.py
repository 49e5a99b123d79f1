"""txnmon's shared library: the pure core, the connectors, and the jobs built on them.

    src/txnmon/core        pure domain: contract, rules, enrichment, batch step, rollup/triage/quality definitions
    src/txnmon/connectors  the only modules that import a client library (Kafka, MongoDB, Great Expectations)
    src/txnmon/jobs        use cases: settings in, summary out (store a batch, replay, rollups, quality, ...)

The public surface is the handful of names below; everything else is reached by its module path.
They load on first use, so `import txnmon.core.contract` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Settings": "txnmon.settings",  # every setting, from the environment
    "load_settings": "txnmon.settings",
    "TxnmonError": "txnmon.errors",  # the one error base
    "parse_transaction": "txnmon.core.contract",  # one message -> a transaction or a rejection
    "Detector": "txnmon.core.rules",  # the rules over a user's history, live and offline
    "load_rules": "txnmon.core.rules",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'include' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
