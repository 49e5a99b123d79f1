"""bench/cpu_baseline.py: the code issue 29 was filed on, taken from this clone's git history."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.cpu_baseline import BASELINE_COMMIT, BaselineUnavailable, baseline_tree

ROOT = Path(__file__).resolve().parents[2]


def _has_history() -> bool:
    found = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{BASELINE_COMMIT}^{{commit}}"],
                           capture_output=True)
    return found.returncode == 0


@pytest.mark.skipif(not _has_history(), reason="not a clone with the project's history")
def test_the_tree_is_the_old_code_with_its_bench(tmp_path: Path):
    tree = baseline_tree(tmp_path)
    assert (tree / "bench" / "cpu.py").is_file()
    old = (tree / "src" / "txnmon" / "core" / "batch.py").read_text()
    now = (ROOT / "src" / "txnmon" / "core" / "batch.py").read_text()
    assert old != now  # the old judging code, not today's
    assert "def route_batch" in old


def test_a_commit_git_does_not_have_is_refused_with_the_reason(tmp_path: Path):
    with pytest.raises(BaselineUnavailable, match="git archive of 0000000 failed"):
        baseline_tree(tmp_path, commit="0" * 40)
