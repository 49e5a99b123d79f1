"""bench/store_pauses.py: the stack's JVM stops over a bench step, from their safepoint logs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from bench import store_pauses
from bench.store_pauses import LogPosition, stopped_ms, stops_between
from tests.fixtures.devstack import load_stack

# JDK 17's `-Xlog:safepoint:file=...:uptime` lines, a G1 pause and two others
LOG = """\
[0.581s] Safepoint "ICBufferFull", Time since last: 557268413 ns, Reaching safepoint: 4166 ns, Cleanup: 127615 ns, At safepoint: 3050 ns, Total: 134831 ns
[0.589s] Safepoint "G1CollectForAllocation", Time since last: 167854 ns, Reaching safepoint: 86217 ns, Cleanup: 2288 ns, At safepoint: 8243518 ns, Total: 8332023 ns
[1.200s] Safepoint "ShenandoahFinalMarkStartEvac", Time since last: 600000000 ns, Reaching safepoint: 1000 ns, Cleanup: 0 ns, At safepoint: 250000000 ns, Total: 250001000 ns
"""  # noqa: E501 (the JVM's own lines)


def test_each_complete_line_is_one_stop_in_ms() -> None:
    assert stopped_ms(LOG) == [0.134831, 8.332023, 250.001]
    # the line the JVM is still writing is not read yet, nor anything that is not a safepoint's line
    assert stopped_ms(LOG + '[1.3s] Safepoint "Cleanup", Total: 99') == [0.134831, 8.332023, 250.001]
    assert stopped_ms("[0.1s] Using G1\nno total here\n") == []


def _at_end(log: Path) -> LogPosition:
    stat = log.stat()
    return LogPosition(log, (stat.st_dev, stat.st_ino), stat.st_size)


def test_the_stops_between_two_readings_are_the_lines_written_between(tmp_path: Path) -> None:
    log = tmp_path / "mongo-safepoints.log"
    first, rest = LOG.split("\n", 1)
    log.write_text(first + "\n")
    before = _at_end(log)
    with log.open("a") as out:
        out.write(rest)
    after = _at_end(log)
    assert stops_between(before, after) == {"stops": 2, "stopped_ms": 258.3, "longest_ms": 250.0}
    assert stops_between(after, after) == {"stops": 0, "stopped_ms": 0.0, "longest_ms": 0.0}


@pytest.mark.parametrize("case", ["missing", "shorter", "replaced"])
def test_no_figure_when_the_readings_cannot_be_compared(tmp_path: Path, case: str) -> None:
    log = tmp_path / "kafka-safepoints.log"
    log.write_text(LOG)
    before = _at_end(log)
    if case == "missing":
        assert stops_between(None, before) is None
    elif case == "shorter":  # rotated in place
        log.write_text(LOG[:10])
        assert stops_between(before, _at_end(log)) is None
    else:  # a restarted JVM's new file (the old one rotated aside), longer than the old one was
        log.rename(tmp_path / "kafka-safepoints.log.0")
        log.write_text(LOG * 3)
        assert stops_between(before, _at_end(log)) is None


@pytest.fixture
def stack_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stack whose "mongo" JVM runs as pid 4242 with its safepoint log in tmp_path."""
    log = tmp_path / "mongo-safepoints.log"
    monkeypatch.setattr(store_pauses, "stack_pid", lambda service: 4242 if service in ("mongo", "store") else None)
    monkeypatch.setattr(store_pauses, "load_stack", lambda: SimpleNamespace(MONGO=SimpleNamespace(safepoints=log)))
    return log


def test_a_reading_is_where_the_log_of_the_stacks_jvm_ends(stack_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack_log.write_text(LOG)
    monkeypatch.setattr(store_pauses, "_command_line",
                        lambda pid: ["java", "-XX:+UseShenandoahGC", f'-Xlog:safepoint:file="{stack_log}":uptime'])
    assert store_pauses.position("mongo") == _at_end(stack_log)
    assert store_pauses.position("store") == _at_end(stack_log)  # the bench's name for it
    assert store_pauses.collector("mongo") == "UseShenandoahGC"
    assert store_pauses.position("kafka") is None and store_pauses.collector("kafka") is None


def test_an_old_log_that_the_running_jvm_does_not_write_is_not_read(stack_log: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    stack_log.write_text(LOG)  # left by a stack started before the JVMs logged their stops
    monkeypatch.setattr(store_pauses, "_command_line", lambda pid: ["java", "-Xmx12g", "TxnmonMongoServer.java"])
    assert store_pauses.position("mongo") is None
    assert store_pauses.collector("mongo") is None


def test_the_stacks_jvms_log_their_stops_where_the_bench_reads_them() -> None:
    stack = load_stack()
    command = stack.mongo_command("java", heap=["-Xmx64m"], stops=True)
    assert f'-Xlog:safepoint:file="{stack.MONGO.safepoints}":uptime' in command
    assert not any(arg.startswith("-Xlog") for arg in stack.mongo_command("java", heap=["-Xmx64m"]))  # a test's
