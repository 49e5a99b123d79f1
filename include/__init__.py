"""txnmon's shared library: the pure core, the connectors, and the jobs built on them.

    include/core        pure domain: contract, rules, enrichment, batch step, rollup/triage/quality definitions
    include/connectors  the only modules that import a client library (Kafka, MongoDB, Great Expectations)
    include/jobs        use cases: settings in, summary out (store a batch, replay, rollups, quality, ...)

The public surface is the handful of names below; everything else is reached by its module path.
They load on first use, so `import include.core.contract` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Settings": "include.config",  # every setting, from the environment
    "load_settings": "include.config",
    "TxnmonError": "include.errors",  # the one error base
    "parse_transaction": "include.core.contract",  # one message -> a transaction or a rejection
    "Detector": "include.core.rules",  # the rules over a user's history, live and offline
    "load_rules": "include.core.rules",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'include' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
