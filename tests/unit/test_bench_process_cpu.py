"""bench/process_cpu.py: the CPU of a bench step's processes, from /proc/PID/stat."""

from __future__ import annotations

import os
import sys

import pytest

from bench.process_cpu import CpuReading, cpu_seconds, parse_stat, per_transaction

# a JVM's line: utime 4,523 and stime 611 ticks (fields 14 and 15)
JAVA = ("3176 (java) S 1 3175 3175 0 -1 1077936384 951203 0 2 0 4523 611 0 0 20 0 93 0 4909475 "
        "14869364736 812345 18446744073709551615 1 1 0 0 0 0 0 4096 16796879 0 0 0 17 1 0 0 0 0 0")


def test_user_and_system_ticks_read_as_seconds() -> None:
    assert parse_stat(JAVA, 100) == pytest.approx(51.34)


def test_a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() -> None:
    tricky = JAVA.replace("(java)", "(a) b (c))")
    assert parse_stat(tricky, 100) == pytest.approx(51.34)


@pytest.mark.parametrize("text", ["", "3176 java S 1", "3176 (java) S 1 2 3", JAVA.replace(" 4523 ", " x ")])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not /proc/PID/stat"):
        parse_stat(text, 100)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_this_process_reads_and_a_gone_one_does_not() -> None:
    spent = cpu_seconds(os.getpid())
    assert spent is not None and spent > 0
    assert cpu_seconds(2**22 + 12345) is None  # above the kernel's pid limit: never a live process


def test_per_transaction_spreads_each_process_and_bounds_the_rate() -> None:
    before = CpuReading(10.0, {"processor": 1.0, "store": 2.0, "broker": 0.5})
    after = CpuReading(30.0, {"processor": 9.4, "store": 12.0, "broker": 2.5})
    out = per_transaction(before, after, 60_000, cores=2)
    assert out["us_per_tx"] == {"processor": 140.0, "store": 166.7, "broker": 33.3}
    assert out["cores_busy"] == 1.02  # 20.4 CPU seconds over 20 s
    assert out["bound_tx_per_s"] == 5882  # 2 cores / 340 µs
    assert per_transaction(before, after, 60_000, cores=2, wall=10.2)["cores_busy"] == 2.0


def test_a_process_not_read_on_both_sides_is_left_out_and_no_bound_is_claimed() -> None:
    before = CpuReading(0.0, {"processor": 1.0, "store": 2.0})
    after = CpuReading(10.0, {"processor": 2.0, "store": 3.0, "broker": 1.0})
    out = per_transaction(before, after, 1_000, cores=2)
    assert out["us_per_tx"] == {"processor": 1000.0, "store": 1000.0}
    assert "bound_tx_per_s" not in out
