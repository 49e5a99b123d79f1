"""bench/store_pauses.py: the stack's JVM stops over a bench step, from their safepoint logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import store_pauses
from bench.store_pauses import LogPosition, stopped_ms, stops_between

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


def test_the_stops_between_two_readings_are_the_lines_written_between(tmp_path: Path) -> None:
    log = tmp_path / "mongo-safepoints.log"
    first, rest = LOG.split("\n", 1)
    log.write_text(first + "\n")
    before = LogPosition(log, log.stat().st_size)
    with log.open("a") as out:
        out.write(rest)
    after = LogPosition(log, log.stat().st_size)
    assert stops_between(before, after) == {"stops": 2, "stopped_ms": 258.3, "longest_ms": 250.0}
    assert stops_between(after, after) == {"stops": 0, "stopped_ms": 0.0, "longest_ms": 0.0}


@pytest.mark.parametrize("case", ["missing", "rotated", "other file"])
def test_no_figure_when_the_readings_cannot_be_compared(tmp_path: Path, case: str) -> None:
    log = tmp_path / "kafka-safepoints.log"
    log.write_text(LOG)
    whole = LogPosition(log, log.stat().st_size)
    if case == "missing":
        assert stops_between(None, whole) is None
    elif case == "rotated":  # the JVM started a new file: it is shorter than at the first reading
        assert stops_between(whole, LogPosition(log, 10)) is None
    else:
        assert stops_between(LogPosition(tmp_path / "other.log", 0), whole) is None


def test_a_stack_that_did_not_start_the_service_has_no_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_pauses, "stack_pid", lambda service: None)
    assert store_pauses.position("mongo") is None


def test_the_stacks_jvms_log_their_stops_where_the_bench_reads_them() -> None:
    from tests.fixtures.devstack import load_stack

    stack = load_stack()
    command = stack.mongo_command("java", stops=True)
    assert f"-Xlog:safepoint:file={stack.MONGO.safepoints}:uptime" in command
    assert not any(arg.startswith("-Xlog") for arg in stack.mongo_command("java"))  # a test's private server
