"""Progress of long commands: plain periodic lines off a terminal, rich bars with rate and ETA on one."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from txnmon.cli.progress import Progress
from txnmon.core.backtest import normalise_rows, run_backtest
from txnmon.core.rules import load_rules
from txnmon.synthetic.generator import GeneratorSpec, generate, write_csv

ROOT = Path(__file__).resolve().parents[3]
TXNMON = str(Path(sys.executable).with_name("txnmon"))


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_plain_lines_come_every_interval_with_rate_and_eta_and_once_at_the_end():
    out, clock = io.StringIO(), Clock()
    progress = Progress("replay", "rows", stream=out, terminal=False, every_s=10, clock=clock)
    progress("sending", 0, 1000)
    for second in range(1, 26):
        clock.t += 1
        progress("sending", 20 * second, 1000)
    clock.t += 5
    progress("sending", 1000, 1000)
    progress("sending", 1000, 1000)  # the end is told once
    lines = out.getvalue().splitlines()
    assert lines == ["replay: sending 200/1,000 rows (20%), 20 rows/s, ETA 40s",
                     "replay: sending 400/1,000 rows (40%), 20 rows/s, ETA 30s",
                     "replay: sending 1,000/1,000 rows (100%) in 30s, 33 rows/s"]


def test_a_stage_first_reported_when_over_gets_no_rate():
    out, clock = io.StringIO(), Clock()
    progress = Progress("generate", "rows", stream=out, terminal=False, every_s=10, clock=clock)
    progress("writing", 2_000, 2_000)  # a small file: its writer reports once, at the end
    assert out.getvalue().splitlines() == ["generate: writing 2,000/2,000 rows (100%) in 0s"]


def test_plain_lines_without_a_total_give_count_and_rate():
    out, clock = io.StringIO(), Clock()
    progress = Progress("rollups", "documents", stream=out, terminal=False, every_s=5, clock=clock)
    progress("reading transactions", 0, None)
    clock.t += 6
    progress("reading transactions", 60_000, None)
    assert out.getvalue() == "rollups: reading transactions 60,000 documents, 10,000 documents/s\n"


def test_on_a_terminal_a_bar_shows_count_percent_rate_and_eta(monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    out, clock = io.StringIO(), Clock()
    with Progress("backtest", "transactions", stream=out, terminal=True, clock=clock) as progress:
        progress("rules", 0, 50_000)
        clock.t += 2
        progress("rules", 20_000, 50_000)
    text = out.getvalue()
    assert "backtest: rules" in text and "20000/50000" in text and "40%" in text
    assert "10,000 transactions/s" in text and "ETA 3s" in text and "\x1b[" in text  # drawn with terminal codes


def test_on_a_terminal_a_stage_first_reported_when_over_gets_no_rate(monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")
    out, clock = io.StringIO(), Clock()
    with Progress("generate", "rows", stream=out, terminal=True, clock=clock) as progress:
        progress("writing", 2_000, 2_000)
    assert "2000/2000" in out.getvalue() and "rows/s" not in out.getvalue()


def test_core_loops_report_through_the_callback(tmp_path):
    df = generate(GeneratorSpec(rows=25_000, users=500, seed=3))
    txs, _ = normalise_rows(df.to_dict("records"), ZoneInfo("UTC"))
    calls: list[tuple[int, int]] = []
    run_backtest(txs, load_rules(ROOT / "src" / "txnmon" / "data" / "rules" / "rules.yaml"),
                 progress=lambda done, total: calls.append((done, total)))
    assert calls == [(0, 25_000), (10_000, 25_000), (20_000, 25_000), (25_000, 25_000)]
    written: list[tuple[int, int]] = []
    write_csv(df, tmp_path / "day.csv", lambda done, total: written.append((done, total)), chunk=10_000)
    assert written == [(10_000, 25_000), (20_000, 25_000), (25_000, 25_000)]
    assert (tmp_path / "day.csv").read_text() == df.to_csv(index=False, float_format="%.2f")  # same file as unchunked


def test_generate_draws_a_bar_on_a_pseudo_terminal_and_plain_lines_into_a_pipe(tmp_path):
    out = tmp_path / "day.csv"
    args = [TXNMON, "generate", "--rows", "60000", "--users", "600", "--seed", "5", "--out", str(out)]
    piped = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    assert "generate: writing 60,000/60,000 rows (100%) in" in piped.stderr
    assert "\x1b[" not in piped.stderr  # no terminal codes in a log
    assert len(out.read_text().splitlines()) == 60_001

    main, sub = os.openpty()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=sub, stderr=sub, env={**os.environ, "COLUMNS": "140"})
    os.close(sub)
    chunks = []
    while True:
        try:
            data = os.read(main, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(120) == 0
    os.close(main)
    screen = b"".join(chunks).decode(errors="replace")
    assert "generate: writing" in screen and "60000/60000" in screen and "rows/s" in screen and "ETA" in screen
    assert "━" in screen  # the bar itself
