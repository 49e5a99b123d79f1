"""The layering rule, checked on every import in the tree (function-level imports included).

    txnmon.core        pure: no I/O client, no settings, no framework, nothing above it
    txnmon.synthetic   pure too: synthetic labelled data (the generator, business events) on top of the
                       core, which never imports it
    txnmon.adapters    the only importers of client libraries (Kafka, MongoDB, Great Expectations, HTTP,
                       SMTP) and of Airflow inside the package
    txnmon.pipeline    the write side of a batch: ports, sinks in their order, retry
    txnmon.jobs        use cases: settings in, summary out, through adapters
    txnmon.services    the long-running processes (processor, notify worker) and their metrics
    txnmon.cli, txnmon.dashboard, txnmon.airflow (what dags/ call), dags/, plugins/   entry points, on top

A vertical slice (txnmon.notifications, txnmon.api) spans layers: each of its modules has its layer's rank.
`txnmon.errors`, `txnmon.settings` and `txnmon.logs` are the foundation under all of it. A lower
layer never imports a higher one. Frameworks have one home each: Airflow in txnmon.airflow, dags/ and
plugins/; Streamlit in the dashboard; prometheus_client in the services (txnmon.api.metrics too); FastAPI
in plugins/ and the HTTP service (txnmon.api.app, txnmon.api.server), Uvicorn in plugins/ and txnmon.api.server.
bench/ is scanned too: it may use any layer, and the raw clients whose ceilings it measures.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
SCANNED = (SRC / "txnmon", ROOT / "plugins", ROOT / "dags", ROOT / "bench")
CLIENT_LIBRARIES = {"kafka", "confluent_kafka", "pymongo", "bson", "gridfs", "motor", "great_expectations",
                    "smtplib", "http", "requests", "httpx", "urllib3",
                    "vaderSentiment"}  # reads its lexicon files (and imports requests): adapters only
CLIENT_MODULES = {"urllib.request", "urllib.error"}  # network clients in a package otherwise pure (urllib.parse)
# each framework's only homes (a layer name, or a top-level folder)
FRAMEWORKS = {
    "airflow": {"dags", "plugins", "txnmon.airflow"},
    "streamlit": {"txnmon.dashboard"},
    "prometheus_client": {"txnmon.services", "txnmon.notifications.metrics", "txnmon.api.metrics"},
    "fastapi": {"plugins", "txnmon.api.app", "txnmon.api.reads", "txnmon.api.server"},
    "uvicorn": {"plugins", "txnmon.api.server"},
}
FOUNDATION = {"txnmon.errors": set(), "txnmon.settings": {"txnmon.errors"}, "txnmon.logs": set()}
# a vertical slice spans layers: each of its modules has the rank of the layer it belongs to
SLICES = {"txnmon.notifications": {"routes": 0, "messages": 0, "policy": 0, "channels": 1, "outbox": 3,
                                   "worker": 4, "metrics": 4},
          "txnmon.api": {"keys": 0, "limits": 0, "ingest": 0, "decisions": 0, "app": 4, "reads": 4,
                         "server": 4, "metrics": 4}}
# txnmon.synthetic sits between the core and the adapters (0.5: no other layer's rank moves)
RANKS = {"txnmon.core": 0, "txnmon.synthetic": 0.5, "txnmon.adapters": 1, "txnmon.pipeline": 2, "txnmon.jobs": 3,
         "txnmon.services": 4, "txnmon.cli": 5, "txnmon.dashboard": 5, "txnmon.airflow": 5, "plugins": 5, "dags": 5,
         "bench": 6,
         **{f"{pkg}.{module}": rank for pkg, modules in SLICES.items() for module, rank in modules.items()},
         **dict.fromkeys(SLICES, 0)}  # a slice's __init__ only documents it
ADAPTER = 1
ENTRY = 5
# the CLI starts the services and the dashboard's processes, and the DAG files call txnmon.airflow;
# no other entry point imports another
MAY_IMPORT_ENTRY = {"txnmon.cli", "dags", "bench"}


def module_name(path: Path) -> str:
    base = SRC if path.is_relative_to(SRC) else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    for layer in sorted(RANKS, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement, at any depth."""
    found = []
    package = module if is_package or module.count(".") == 0 else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from txnmon import core` names a module too
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _is(target: str, names: set[str]) -> bool:
    return any(target == m or target.startswith(m + ".") for m in names)


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    """Every import of `module` that breaks the layering rule, as readable lines."""
    out = []
    layer = layer_of(module)
    for line, target in imported_modules(source, module, is_package):
        top = target.split(".")[0]
        where = f"{module}:{line} imports {target}"
        if top in FRAMEWORKS:
            if layer not in FRAMEWORKS[top]:
                out.append(f"{where}: {top} belongs in {' / '.join(sorted(FRAMEWORKS[top]))} only")
            continue
        if top in CLIENT_LIBRARIES or _is(target, CLIENT_MODULES):
            if layer != "bench" and (layer is None or RANKS[layer] != ADAPTER):
                out.append(f"{where}: only adapters (txnmon.adapters, a slice's channels) may import a client library")
            continue
        if module in FOUNDATION:
            if target.startswith("txnmon.") and not _is(target, FOUNDATION[module]):
                out.append(f"{where}: the foundation imports nothing above it")
            continue
        if layer is not None and RANKS[layer] <= 0.5 and _is(target, {"txnmon.settings", "txnmon.logs"}):
            out.append(f"{where}: the core reads no settings (pass values in)")
            continue
        target_layer = layer_of(target)
        if layer is None or target_layer is None:
            continue
        upward = RANKS[target_layer] > RANKS[layer]
        sideways_entry = (RANKS[target_layer] == RANKS[layer] == ENTRY and target_layer != layer
                          and layer not in MAY_IMPORT_ENTRY)
        if upward or sideways_entry:
            out.append(f"{where}: {layer} must not import the higher layer {target_layer}")
    return out


def tree_modules() -> list[tuple[str, Path]]:
    files = [p for top in SCANNED for p in top.rglob("*.py") if "results" not in p.parts]
    return sorted((module_name(p), p) for p in files)


def test_every_layer_imports_only_downwards():
    found = [v for module, path in tree_modules()
             for v in violations(module, path.read_text(encoding="utf-8"), path.name == "__init__.py")]
    assert found == [], "\n".join(found)


def test_the_scan_sees_every_layer():
    layers = {layer_of(m) for m, _ in tree_modules()}
    assert set(RANKS) <= layers


def test_every_txnmon_import_names_a_module_that_exists():
    """A moved module leaves no import behind pointing at its old place (function-level ones included),
    in the product, the benchmarks or the tests."""
    missing = []
    tests = [(module_name(p), p) for p in (ROOT / "tests").rglob("*.py")]
    for module, path in tree_modules() + tests:
        for line, target in imported_modules(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
            if not target.startswith("txnmon."):
                continue
            parent, _, name = target.rpartition(".")
            if _source_of(target) is None and not _defines(parent, name):
                missing.append(f"{module}:{line} imports {target}")
    assert missing == [], "\n".join(missing)


def _source_of(module: str) -> Path | None:
    """The file of a txnmon module, found without importing it."""
    base = SRC.joinpath(*module.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def _defines(module: str, name: str) -> bool:
    return name in _names_defined_in(module)


@functools.cache
def _names_defined_in(module: str) -> frozenset[str]:
    """What `from module import NAME` can name: its assignments, functions, classes and imports (each
    module parsed once, however many imports name it)."""
    source = _source_of(module)
    if source is None:
        return frozenset()
    nodes = list(ast.walk(ast.parse(source.read_text(encoding="utf-8"))))
    names = {t.id for n in nodes if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    names |= {n.name for n in nodes if isinstance(n, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)}
    names |= {n.target.id for n in nodes if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    names |= {(a.asname or a.name).split(".")[0] for n in nodes if isinstance(n, ast.Import | ast.ImportFrom)
              for a in n.names}
    return frozenset(names)


def test_only_the_txnmon_package_is_installed():
    """The wheel ships one top-level package; nothing generic like `cli` or `include` beside it."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["src/txnmon"]
    assert project["project"]["scripts"] == {"txnmon": "txnmon.cli:main"}
    assert sorted(p.name for p in SRC.iterdir() if not p.name.endswith(".egg-info")) == ["txnmon"]


@pytest.mark.parametrize(("module", "source"), [
    # what the tree did before the layers existed
    ("txnmon.core.batch", "from txnmon.adapters.kafka import SourceRecord"),
    ("txnmon.core.rules.engine", "from txnmon.settings import PACKAGE_DATA"),
    ("txnmon.jobs.replay", "def f():\n    from txnmon.services.processor import Processor"),
    ("txnmon.errors", "from txnmon.adapters.mongo import MongoStore"),
    ("txnmon.jobs.dlq", "import pymongo"),
    ("txnmon.services.processor", "from confluent_kafka import Consumer"),
    ("txnmon.adapters.mongo", "from txnmon.jobs import rollups"),
    ("txnmon.dashboard.app", "from txnmon.cli import main"),
    ("txnmon.core.rollups", "from ..jobs import rollups"),
    ("txnmon.notifications.worker", "import smtplib"),
    ("txnmon.notifications.routes", "from txnmon.adapters.mongo import MongoStore"),
    ("txnmon.notifications.channels", "from txnmon.notifications.outbox import RoutesFeed"),
    ("txnmon.notifications.messages", "from urllib.request import urlopen"),
    ("txnmon.core.backtest", "from txnmon.synthetic.spec import PATTERNS"),
    ("txnmon.synthetic.generator", "from txnmon.adapters.mongo import MongoStore"),
    ("txnmon.synthetic.generator", "from txnmon.settings import PACKAGE_DATA"),
    ("txnmon.pipeline.sinks", "from txnmon.jobs.rollups import run_rollups"),
    # frameworks out of their homes
    ("txnmon.jobs.quality", "def f():\n    from airflow.sdk.exceptions import AirflowFailException"),
    ("txnmon.notifications.outbox", "from airflow.sdk import BaseNotifier"),
    ("txnmon.notifications.worker", "from prometheus_client import Counter"),
    ("txnmon.jobs.status", "import streamlit as st"),
    ("txnmon.jobs.rollups", "from prometheus_client import Counter"),
    ("txnmon.core.contract", "from fastapi import FastAPI"),
    ("txnmon.api.ingest", "from fastapi import FastAPI"),
    ("txnmon.api.keys", "from txnmon.settings import Settings"),
    ("txnmon.api.limits", "from txnmon.adapters.mongo import MongoStore"),
    ("txnmon.api.app", "import uvicorn"),
    ("txnmon.api.app", "from txnmon.cli import main"),
    ("txnmon.adapters.mongo", "from airflow.sdk import BaseHook"),
    ("txnmon.jobs.replay", "from txnmon.airflow.connections import task_settings"),
    ("txnmon.core.sentiment", "from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer"),
    ("txnmon.jobs.sentiment", "import vaderSentiment"),
])
def test_the_rule_catches_an_upward_import(module, source):
    assert violations(module, source), f"{module}: {source!r} should break the rule"


@pytest.mark.parametrize(("module", "source"), [
    ("txnmon.jobs.rollups", "from txnmon.core.rollups import ROLLUPS"),
    ("txnmon.synthetic.behaviours", "from txnmon.core import geo"),
    ("txnmon.cli.data", "from txnmon.synthetic import generator"),
    ("txnmon.adapters.kafka", "from confluent_kafka import Consumer"),
    ("txnmon.cli.service", "from txnmon.services.processor import run_processor"),
    ("txnmon.core.contract", "from txnmon.errors import TxnmonError"),
    ("txnmon.notifications.channels", "import smtplib"),
    ("txnmon.notifications.metrics", "from prometheus_client import Counter"),
    ("txnmon.notifications.worker", "from txnmon.notifications.channels import deliver"),
    ("txnmon.airflow.notifier", "from airflow.sdk import BaseNotifier"),
    ("txnmon.airflow.connections", "import urllib.parse"),
    ("txnmon.airflow.tasks", "from txnmon.jobs import quality"),
    ("txnmon.services.metrics", "from prometheus_client import Counter"),
    ("txnmon.api.app", "from fastapi import FastAPI"),
    ("txnmon.api.server", "import uvicorn"),
    ("txnmon.api.metrics", "from prometheus_client import Counter"),
    ("txnmon.api.ingest", "from txnmon.core.contract import parse_transaction"),
    ("txnmon.jobs.api_keys", "from txnmon.api import keys"),
    ("txnmon.cli.api", "from txnmon.api.server import serve"),
    ("txnmon.dashboard.app", "import streamlit as st"),
    ("bench.run", "import pymongo"),
    ("dags.kpi_rollups", "from airflow.sdk import dag"),
    ("txnmon.adapters.sentiment", "from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer"),
])
def test_the_rule_allows_downward_imports(module, source):
    assert violations(module, source) == []


def test_docs_describe_every_module():
    """docs/layers.md has a line for every module of the package that says what it is (a docstring)."""
    text = (ROOT / "docs" / "layers.md").read_text(encoding="utf-8")
    missing = [str(p.relative_to(SRC)) for p in sorted((SRC / "txnmon").rglob("*.py"))
               if p.read_text(encoding="utf-8").strip() and f"`{p.relative_to(SRC)}`" not in text]
    assert missing == [], f"add to docs/layers.md: {missing}"


def test_no_product_module_is_over_400_lines():
    sizes = {str(p.relative_to(SRC)): len(p.read_text(encoding="utf-8").splitlines())
             for p in (SRC / "txnmon").rglob("*.py")}
    assert {m: n for m, n in sizes.items() if n > 400} == {}
