"""Files named by DAG params: only inside the folders the operator allows.

People who can trigger a DAG in the Airflow UI are not the people who can read the workers'
disks: a `file` param may name a CSV under DATA_DIR and a `candidate_rules` param a YAML file
under RULES_DIR, nothing else (symbolic links are resolved before the check). A relative name is
taken inside that folder, so a param works whatever the worker's directory or install.
"""

from __future__ import annotations

from pathlib import Path

from txnmon.errors import InvalidInputFile


def resolve_under(path: str | Path, root: Path, setting: str) -> Path:
    """`path` (relative: inside `root`) resolved, if it lies under `root`; InvalidInputFile naming the setting."""
    allowed = Path(root).resolve()
    p = Path(path)
    resolved = (p if p.is_absolute() else allowed / p).resolve()
    if not resolved.is_relative_to(allowed):
        raise InvalidInputFile(f"{path}: only files under {allowed} may be used here (set {setting} to allow "
                               "another folder)")
    return resolved
