"""Every `txnmon` command builds the whole parser: it must stay cheap to import."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("numpy", "pandas", "great_expectations", "confluent_kafka", "pymongo", "airflow")


def test_building_the_parser_imports_no_heavy_library():
    code = ("import sys; from txnmon.cli import build_parser; build_parser(); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"imported while building the parser: {out}"
