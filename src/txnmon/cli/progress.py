"""Progress of long commands on stderr: rich bars with rate and ETA on a terminal, plain periodic
lines otherwise (a log file, cron, CI). Jobs and core functions take a plain callback
`progress(stage, done, total)`; only this module knows how it is shown.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

PLAIN_EVERY_S = 10.0
MIN_RATE_S = 0.01  # a stage shorter than this gets no rate


def _rate(n: float) -> str:
    return f"{n:,.0f}" if n >= 10 else f"{n:,.1f}"


def _duration(seconds: float) -> str:
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class _Stage:
    def __init__(self, started: float) -> None:
        self.started = started
        self.done = 0
        self.total: int | None = None
        self.last_line = started
        self.finished = False


class Progress:
    """Call it as `progress(stage, done, total)` (`done` so far, `total` None when unknown).

    `unit` names what is counted ("rows", "documents"). `terminal` None: decided by `stream.isatty()`.
    """

    def __init__(self, command: str, unit: str = "rows", *, stream: TextIO | None = None,
                 terminal: bool | None = None, every_s: float = PLAIN_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.command, self.unit, self.every_s, self.clock = command, unit, every_s, clock
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.stages: dict[str, _Stage] = {}
        self._bars: Any = None
        self._tasks: dict[str, Any] = {}

    # --- the callback ---------------------------------------------------------------------------

    def __call__(self, stage: str, done: int, total: int | None = None) -> None:
        now = self.clock()
        state = self.stages.get(stage)
        if state is None:
            state = self.stages[stage] = _Stage(now)
        state.done, state.total = done, total
        if self.terminal:
            self._bar(stage, done, total)
            return
        complete = total is not None and done >= total
        if complete and not state.finished:
            state.finished = True
            self.stream.write(self.line(stage, now) + "\n")
            self.stream.flush()
        elif not complete and now - state.last_line >= self.every_s:
            state.last_line = now
            self.stream.write(self.line(stage, now) + "\n")
            self.stream.flush()

    def line(self, stage: str, now: float) -> str:
        """`replay: sending 50,000/200,000 rows (25%), 12,345 rows/s, ETA 12s`."""
        s = self.stages[stage]
        elapsed = max(now - s.started, 1e-9)
        rate = s.done / elapsed
        if s.total is None:
            return f"{self.command}: {stage} {s.done:,} {self.unit}, {_rate(rate)} {self.unit}/s"
        share = s.done / s.total if s.total else 1.0
        if s.done >= s.total:
            done = f"{self.command}: {stage} {s.done:,}/{s.total:,} {self.unit} (100%) in {_duration(elapsed)}"
            # a stage reported only once it was over has no measured duration: no rate rather than 10^12/s
            return done if elapsed < MIN_RATE_S else f"{done}, {_rate(rate)} {self.unit}/s"
        eta = f"ETA {_duration((s.total - s.done) / rate)}" if rate > 0 else "ETA unknown"
        return (f"{self.command}: {stage} {s.done:,}/{s.total:,} {self.unit} ({share:.0%}), "
                f"{_rate(rate)} {self.unit}/s, {eta}")

    # --- a terminal -----------------------------------------------------------------------------

    def _bar(self, stage: str, done: int, total: int | None) -> None:
        if self._bars is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                SpinnerColumn,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as Bars

            # rate and ETA come from this object's clock (the same figures as the plain lines)
            self._bars = Bars(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                              MofNCompleteColumn(), TaskProgressColumn(), TextColumn("{task.fields[rate]}"),
                              TimeElapsedColumn(), TextColumn("{task.fields[eta]}"),
                              console=Console(file=self.stream, force_terminal=True), transient=False)
            self._bars.start()
        if stage not in self._tasks:
            self._tasks[stage] = self._bars.add_task(f"{self.command}: {stage}", total=total, rate="", eta="")
        s = self.stages[stage]
        elapsed = self.clock() - s.started
        rate = done / max(elapsed, 1e-9)
        if total is None:
            eta = ""
        elif done >= total:
            eta = "done"
        else:
            eta = f"ETA {_duration((total - done) / rate)}" if rate > 0 else "ETA unknown"
        shown = "" if elapsed < MIN_RATE_S else f"{_rate(rate)} {self.unit}/s"  # no rate from no duration
        self._bars.update(self._tasks[stage], completed=done, total=total, rate=shown, eta=eta)

    # --- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        if self._bars is not None:
            self._bars.stop()
            self._bars = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
