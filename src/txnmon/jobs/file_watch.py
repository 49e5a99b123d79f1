"""When to read a hot-reloaded file again (the rules, the notification routes).

The file's (modification time, size) is looked at no more than every `interval_s`, or at once after
`request()` (SIGHUP). Reading, validating and keeping the old contents when the new ones are bad is
the caller's: a watch only says "look again".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHECK_INTERVAL_S = 2.0


class FileWatch:
    def __init__(self, path: Path | str, interval_s: float = CHECK_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.interval_s = interval_s
        self.clock = clock
        self.requested = False
        self._seen = self._stat()
        self._checked = clock()

    def _stat(self) -> tuple[float, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def request(self, *_: Any) -> None:
        """Look again at the next check, whatever the interval and the file's stat say."""
        self.requested = True

    def changed(self) -> bool:
        """Whether the file should be read again now (a request, or a new stat after the interval)."""
        now = self.clock()
        if not self.requested and now - self._checked < self.interval_s:
            return False
        self._checked = now
        current = self._stat()
        if not self.requested and current == self._seen:
            return False
        self.requested = False
        self._seen = current
        return True
