"""DAG params may name files only inside the folders the operator allows."""

from __future__ import annotations

import pytest

from txnmon.errors import InvalidInputFile
from txnmon.jobs.paths import resolve_under


def test_a_file_inside_the_allowed_folder_is_accepted(tmp_path):
    (tmp_path / "day.csv").write_text("x")
    assert resolve_under(str(tmp_path / "day.csv"), tmp_path, "DATA_DIR") == (tmp_path / "day.csv").resolve()


def test_a_relative_name_is_taken_inside_the_allowed_folder(tmp_path, monkeypatch):
    (tmp_path / "day.csv").write_text("x")
    monkeypatch.chdir("/")
    assert resolve_under("day.csv", tmp_path, "DATA_DIR") == (tmp_path / "day.csv").resolve()


@pytest.mark.parametrize("name", ["/etc/passwd", "../../etc/passwd", "src/txnmon/../../../etc/hostname"])
def test_paths_outside_are_refused_naming_the_setting(tmp_path, name):
    with pytest.raises(InvalidInputFile, match="DATA_DIR"):
        resolve_under(name, tmp_path, "DATA_DIR")


def test_a_symbolic_link_out_of_the_folder_is_refused(tmp_path):
    allowed = tmp_path / "data"
    allowed.mkdir()
    (allowed / "sneaky.csv").symlink_to("/etc/hostname")
    with pytest.raises(InvalidInputFile):
        resolve_under(str(allowed / "sneaky.csv"), allowed, "DATA_DIR")
