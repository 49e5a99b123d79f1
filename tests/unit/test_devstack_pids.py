"""devstack/stack.py's pid files: `down` and `status` must only ever act on the process `up` started,
never on a process that later got the same pid. No Kafka or MongoDB is started: harmless sleeping
processes stand in for the services, and the stack's state lives in a temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.devstack import load_stack

ROOT = Path(__file__).resolve().parents[2]


devstack = load_stack()


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Pid files, logs and "lib" folders under tmp_path; no port ever looks open (the real stack may be up)."""
    monkeypatch.setattr(devstack, "STATE", tmp_path)
    monkeypatch.setattr(devstack, "port_open", lambda port, host=devstack.HOST: False)
    (tmp_path / "run").mkdir()
    return tmp_path


@pytest.fixture
def spawn() -> Iterator:
    """Start harmless sleeping processes; whatever still runs at the end is killed."""
    procs: list[subprocess.Popen] = []

    def start(*marker: str) -> subprocess.Popen:
        # the extra arguments only land in /proc/PID/cmdline, where the stack looks for its paths
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", *marker])
        procs.append(proc)
        _wait_for_cmdline(proc.pid, "time.sleep(30)")
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(10)
        except ChildProcessError:
            pass


def _wait_for_cmdline(pid: int, expected: str) -> None:
    # Popen returns once exec has begun; /proc/PID/cmdline shows the new arguments a moment later
    deadline = time.monotonic() + 10
    while expected.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, f"pid {pid} never showed {expected!r} in its command line"
        time.sleep(0.01)


def _service_process(spawn, service) -> subprocess.Popen:
    """A process whose command line names the service's lib folder, as a real service's does."""
    return spawn("-cp", f"{service.lib}/*")


def test_start_time_is_field_22_of_proc_stat(spawn):
    proc = spawn()
    own, child = devstack._start_time(os.getpid()), devstack._start_time(proc.pid)
    uptime_s = float(Path("/proc/uptime").read_text().split()[0])
    now_ticks = uptime_s * os.sysconf("SC_CLK_TCK")
    assert isinstance(child, int) and own is not None
    assert own <= child <= now_ticks + 1
    assert devstack._start_time(proc.pid) == child  # stable for the life of the process


def test_start_time_survives_a_command_name_with_spaces_and_parentheses(tmp_path: Path):
    # /proc/PID/stat's 2nd field is "(comm)", and comm may contain ") (": it must not shift the fields
    weird = tmp_path / "x) (y z"
    weird.symlink_to("/bin/sleep")
    proc = subprocess.Popen([str(weird), "30"])
    try:
        _wait_for_cmdline(proc.pid, "30")
        assert "x) (y z" in Path(f"/proc/{proc.pid}/stat").read_text()
        started = devstack._start_time(proc.pid)
        assert started is not None and devstack._start_time(os.getpid()) <= started
    finally:
        proc.kill()
        proc.wait(10)


def test_start_time_of_a_process_that_is_gone_is_none(spawn):
    proc = spawn()
    proc.kill()
    proc.wait(10)
    assert devstack._start_time(proc.pid) is None


def test_pid_file_with_the_matching_start_time_is_ours(spawn, capsys):
    service = devstack.MONGO
    proc = _service_process(spawn, service)
    devstack._write_pidfile(service.pidfile, proc.pid)
    assert service.pidfile.read_text() == f"{proc.pid} {devstack._start_time(proc.pid)}\n"

    assert devstack.read_pid(service) == proc.pid
    devstack.status()
    assert f"pid {proc.pid}" in capsys.readouterr().out


def test_pid_file_with_another_start_time_is_not_ours_and_down_leaves_the_process_alone(spawn, capsys):
    # the pid was recycled: same pid, command line also names our lib folder, but started at another time
    service = devstack.MONGO
    proc = _service_process(spawn, service)
    started = devstack._start_time(proc.pid)
    service.pidfile.write_text(f"{proc.pid} {started - 1}\n")

    devstack.down(["mongo"])

    assert "mongo not running" in capsys.readouterr().out
    assert proc.poll() is None, "down must not signal a process it did not start"
    assert not service.pidfile.exists()  # the stale pid file is dropped, as before


def test_status_does_not_report_a_recycled_pid(spawn, capsys):
    service = devstack.KAFKA
    proc = _service_process(spawn, service)
    service.pidfile.write_text(f"{proc.pid} {devstack._start_time(proc.pid) + 100}\n")

    assert devstack.read_pid(service) is None
    assert devstack.status() == 3
    out = capsys.readouterr().out
    assert f"pid {proc.pid}" not in out and "kafka  down" in out
    assert proc.poll() is None


def test_down_stops_the_process_it_started(spawn, capsys):
    service = devstack.MONGO
    proc = _service_process(spawn, service)
    devstack._write_pidfile(service.pidfile, proc.pid)

    devstack.down(["mongo"])

    assert "mongo stopped" in capsys.readouterr().out
    assert not Path(f"/proc/{proc.pid}").exists()  # terminated and reaped
    assert not service.pidfile.exists()


def test_pid_file_of_a_dead_process_is_not_ours(spawn, capsys):
    service = devstack.MONGO
    proc = _service_process(spawn, service)
    started = devstack._start_time(proc.pid)
    proc.kill()
    proc.wait(10)
    service.pidfile.write_text(f"{proc.pid} {started}\n")

    assert devstack.read_pid(service) is None
    assert not service.pidfile.exists()
    devstack.down(["mongo"])
    assert "mongo not running" in capsys.readouterr().out


def test_old_pid_file_without_start_time_falls_back_to_the_command_line_check(spawn):
    service = devstack.MONGO
    ours = _service_process(spawn, service)
    service.pidfile.write_text(f"{ours.pid}\n")
    assert devstack.read_pid(service) == ours.pid

    stranger = spawn()  # its command line does not name our lib folder
    service.pidfile.write_text(f"{stranger.pid}\n")
    assert devstack.read_pid(service) is None
    devstack.down(["mongo"])
    assert stranger.poll() is None and ours.poll() is None


def test_a_right_start_time_does_not_override_the_command_line_check(spawn):
    service = devstack.MONGO
    stranger = spawn()
    service.pidfile.write_text(f"{stranger.pid} {devstack._start_time(stranger.pid)}\n")
    assert devstack.read_pid(service) is None
    assert stranger.poll() is None


def test_unreadable_pid_files_are_not_ours(spawn):
    service = devstack.MONGO
    for text in ("", "not-a-pid\n", "123 not-a-time\n"):
        service.pidfile.write_text(text)
        assert devstack.read_pid(service) is None


def test_spawn_records_the_start_time_in_the_pid_file(private_state: Path):
    service = devstack.MONGO
    pid = devstack._spawn(service, [sys.executable, "-c", "import time; time.sleep(30)", str(service.lib)])
    try:
        _wait_for_cmdline(pid, str(service.lib))
        recorded = service.pidfile.read_text().split()
        assert recorded == [str(pid), str(devstack._start_time(pid))]
        assert devstack.read_pid(service) == pid
        assert "starting mongo" in service.log.read_text()
    finally:
        devstack.down(["mongo"])
    assert not Path(f"/proc/{pid}").exists()


def test_down_leaves_an_app_with_a_recycled_pid_alone_but_stops_its_own(spawn, capsys):
    # apps (processor, dashboard) keep pid files in run/ too; `down` stops those whose command line names the repo
    recycled = spawn(str(ROOT))
    (devstack.STATE / "run" / "processor.pid").write_text(f"{recycled.pid} {devstack._start_time(recycled.pid) + 7}\n")
    own = spawn(str(ROOT))
    (devstack.STATE / "run" / "dashboard.pid").write_text(f"{own.pid} {devstack._start_time(own.pid)}\n")

    devstack.down()

    out = capsys.readouterr().out
    assert recycled.poll() is None and "processor stopped" not in out
    assert own.wait(10) is not None and "dashboard stopped" in out
    assert not list((devstack.STATE / "run").glob("*.pid"))
