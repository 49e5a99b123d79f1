"""FileWatch: look again at a hot-reloaded file only after the interval, when it changed, or on request."""

from __future__ import annotations

import os

from txnmon.jobs.file_watch import FileWatch


def test_a_change_is_seen_only_after_the_interval_and_only_once(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("a")
    now = [0.0]
    watch = FileWatch(path, interval_s=2.0, clock=lambda: now[0])
    path.write_text("abc")  # another size: a new stat
    assert not watch.changed()  # within the interval
    now[0] = 2.5
    assert watch.changed()
    now[0] = 5.0
    assert not watch.changed()  # the same stat again


def test_a_request_is_honoured_at_once_and_a_deleted_file_counts_as_a_change(tmp_path):
    path = tmp_path / "routes.yaml"
    path.write_text("x")
    now = [0.0]
    watch = FileWatch(path, clock=lambda: now[0])
    watch.request()
    assert watch.changed() and not watch.changed()
    os.remove(path)
    now[0] = 3.0
    assert watch.changed()
