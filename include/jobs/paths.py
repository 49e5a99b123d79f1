"""Files named by DAG params: only inside the folders the operator allows.

People who can trigger a DAG in the Airflow UI are not the people who can read the workers'
disks: a `file` param may name a CSV under DATA_DIR and a `candidate_rules` param a YAML file
under RULES_DIR, nothing else (symbolic links are resolved before the check).
"""

from __future__ import annotations

from pathlib import Path

from include.config import PROJECT_ROOT
from include.errors import InvalidInputFile


def resolve_path(path: str | Path) -> Path:
    """Relative paths are taken from the project root, so DAG params work from any directory."""
    p = Path(path)
    return p if p.is_absolute() else PROJECT_ROOT / p


def resolve_under(path: str | Path, root: Path, setting: str) -> Path:
    """`path` resolved, if it lies under `root`; InvalidInputFile (naming the setting) if not."""
    resolved = resolve_path(path).resolve()
    allowed = Path(root).resolve()
    if not resolved.is_relative_to(allowed):
        raise InvalidInputFile(f"{path}: only files under {allowed} may be used here (set {setting} to allow "
                               "another folder)")
    return resolved
