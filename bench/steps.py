"""A bench run as a list of steps whose figures survive a later failure.

`StepResults` holds the figures measured so far and rewrites the results file after every step,
atomically (a temporary file in the same folder, then a rename), so a crash, a timeout or a step that
raises never loses what the earlier steps measured. A step that raises is recorded in the file as
{"step": name, "error": "<type>: <message>"} under "failed_steps", and the run goes on with the next
step; `failed` tells the caller to exit non-zero at the end.
"""

from __future__ import annotations

import json
import os
import tempfile
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from txnmon.errors import TxnmonError


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` quantile of `values` (0 <= q <= 1), as every latency step reports its p99."""
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


class MissingFigure(TxnmonError):
    """A step needs a figure an earlier step did not measure (that step failed or was skipped)."""


class StepFailed(TxnmonError):
    """A step measured something wrong (a helper process failed, a count does not add up)."""


class StepResults:
    def __init__(self, path: Path, figures: Mapping[str, Any] | None = None) -> None:
        self.path = path
        self.figures: dict[str, Any] = dict(figures or {})
        self.figures.setdefault("failed_steps", [])

    @property
    def failed(self) -> bool:
        return bool(self.figures["failed_steps"])

    def need(self, *keys: str) -> list[Any]:
        """The figures `keys`, or MissingFigure naming the first one an earlier step did not measure."""
        missing = [k for k in keys if k not in self.figures]
        if missing:
            raise MissingFigure(f"needs {missing[0]!r}, which an earlier step did not measure")
        return [self.figures[k] for k in keys]

    def step(self, name: str, measure: Callable[[], Mapping[str, Any] | None]) -> bool:
        """Run one step: its returned figures are merged in; an exception is recorded as the step's
        error instead of ending the run. The file is written either way. True if the step succeeded."""
        try:
            measured = measure()
        except Exception as exc:  # every failure is the step's result: the run goes on
            self.figures["failed_steps"].append({"step": name, "error": f"{type(exc).__name__}: {exc}"})
            if not isinstance(exc, MissingFigure):
                traceback.print_exc()
            self.write()
            return False
        self.figures.update(measured or {})
        self.write()
        return True

    def update(self, **figures: Any) -> None:
        """Figures computed outside a step (ratios, targets); written at once."""
        self.figures.update(figures)
        self.write()

    def write(self) -> None:
        """Replace the results file in one rename: a reader (or a crash) never sees half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self.figures, out, indent=2, default=str)
                out.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def ratio(figures: Mapping[str, Any], top: str, bottom: str, digits: int) -> float | None:
    """top / bottom when both were measured (bottom floored at 1), else None."""
    if not isinstance(figures.get(top), int | float) or not isinstance(figures.get(bottom), int | float):
        return None
    return round(figures[top] / max(figures[bottom], 1), digits)
