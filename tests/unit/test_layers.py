"""The layering rule, checked on every import in the tree (function-level imports included).

    include/core        pure: no I/O client, no settings, nothing above it
    include/connectors  the only importers of client libraries (Kafka, MongoDB, Great Expectations, HTTP, SMTP)
    include/jobs        use cases: settings in, summary out, through connectors
    streaming/          the processor loop and its metrics
    cli/ dashboard/ plugins/ dags/   entry points, on top of everything

`include/errors.py`, `include/config.py` and `include/logs.py` are the foundation under all of it.
A lower layer never imports a higher one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("include", "streaming", "cli", "dashboard", "plugins", "dags")
CLIENT_LIBRARIES = {"kafka", "confluent_kafka", "pymongo", "bson", "gridfs", "motor", "great_expectations",
                    "smtplib", "http", "requests", "httpx", "urllib3"}
CLIENT_MODULES = {"urllib.request"}  # network clients inside a package that is otherwise pure (urllib.parse)
FOUNDATION = {"include.errors": set(), "include.config": {"include.errors"}, "include.logs": set()}
RANKS = {"include.core": 0, "include.connectors": 1, "include.jobs": 2, "streaming": 3, "cli": 4,
         "dashboard": 4, "plugins": 4, "dags": 4}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    for layer in sorted(RANKS, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement, at any depth."""
    found = []
    package = module if module.count(".") == 0 else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from include import core` names a module too
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def violations(module: str, source: str) -> list[str]:
    """Every import of `module` that breaks the layering rule, as readable lines."""
    out = []
    layer = layer_of(module)
    for line, target in imported_modules(source, module):
        top = target.split(".")[0]
        where = f"{module}:{line} imports {target}"
        client = top in CLIENT_LIBRARIES or any(target == m or target.startswith(m + ".") for m in CLIENT_MODULES)
        if client and layer != "include.connectors":
            out.append(f"{where}: only include/connectors may import a client library")
            continue
        if module in FOUNDATION:
            allowed = FOUNDATION[module]
            if (target.startswith("include.") and not any(target == a or target.startswith(a + ".")
                                                          for a in allowed)):
                out.append(f"{where}: the foundation imports nothing above it")
            continue
        if layer == "include.core" and target.startswith(("include.config", "include.logs")):
            out.append(f"{where}: the core reads no settings (pass values in)")
            continue
        target_layer = layer_of(target)
        if layer is None or target_layer is None:
            continue
        if RANKS[target_layer] > RANKS[layer] or (RANKS[target_layer] == RANKS[layer] == 4
                                                  and target_layer != layer and layer != "cli"):
            out.append(f"{where}: {layer} must not import the higher layer {target_layer}")
    return out


def tree_modules() -> list[tuple[str, Path]]:
    files = [p for top in SCANNED for p in (ROOT / top).rglob("*.py")]
    return sorted((module_name(p), p) for p in files)


def test_every_layer_imports_only_downwards():
    found = [v for module, path in tree_modules() for v in violations(module, path.read_text(encoding="utf-8"))]
    assert found == [], "\n".join(found)


def test_the_scan_sees_every_layer():
    layers = {layer_of(m) for m, _ in tree_modules()}
    assert set(RANKS) <= layers


@pytest.mark.parametrize(("module", "source"), [
    # what the tree did before the layers existed
    ("include.core.batch", "from include.connectors.kafka import SourceRecord"),
    ("include.core.rules.engine", "from include.config import INCLUDE_DIR"),
    ("include.jobs.replay", "def f():\n    from streaming.processor import Processor"),
    ("include.errors", "from include.connectors.mongo import MongoStore"),
    ("include.jobs.dlq", "import pymongo"),
    ("streaming.processor", "from kafka import KafkaConsumer"),
    ("include.connectors.mongo", "from include.jobs import rollups"),
    ("dashboard.app", "from cli import main"),
    ("include.core.rollups", "from ..jobs import rollups"),
    ("include.jobs.notify", "import smtplib"),
    ("include.core.notify", "from urllib.request import urlopen"),
])
def test_the_rule_catches_an_upward_import(module, source):
    assert violations(module, source), f"{module}: {source!r} should break the rule"


@pytest.mark.parametrize(("module", "source"), [
    ("include.jobs.rollups", "from include.core.rollups import ROLLUPS"),
    ("include.connectors.kafka", "from kafka import KafkaConsumer"),
    ("cli.service", "from streaming.processor import run_processor"),
    ("include.core.contract", "from include.errors import TxnmonError"),
    ("include.connectors.delivery", "import smtplib"),
    ("include.connectors.airflow_connections", "import urllib.parse"),
])
def test_the_rule_allows_downward_imports(module, source):
    assert violations(module, source) == []
