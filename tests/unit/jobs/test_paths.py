"""DAG params may name files only inside the folders the operator allows."""

from __future__ import annotations

import pytest

from include.errors import InvalidInputFile
from include.jobs.paths import resolve_under


def test_a_file_inside_the_allowed_folder_is_accepted(tmp_path):
    (tmp_path / "day.csv").write_text("x")
    assert resolve_under(str(tmp_path / "day.csv"), tmp_path, "DATA_DIR") == (tmp_path / "day.csv").resolve()


@pytest.mark.parametrize("name", ["/etc/passwd", "../../etc/passwd", "include/../../../etc/hostname"])
def test_paths_outside_are_refused_naming_the_setting(tmp_path, name):
    with pytest.raises(InvalidInputFile, match="DATA_DIR"):
        resolve_under(name, tmp_path, "DATA_DIR")


def test_a_symbolic_link_out_of_the_folder_is_refused(tmp_path):
    allowed = tmp_path / "data"
    allowed.mkdir()
    (allowed / "sneaky.csv").symlink_to("/etc/hostname")
    with pytest.raises(InvalidInputFile):
        resolve_under(str(allowed / "sneaky.csv"), allowed, "DATA_DIR")
