"""Hot reload of the rules file: checked between batches (every 2 s, or at once on SIGHUP); a bad
file is refused and the rules in use stay, so a typo never stops the processor."""

from __future__ import annotations

import logging
from pathlib import Path

from txnmon.core.rules import Detector, RulesError, load_rules
from txnmon.jobs.file_watch import FileWatch
from txnmon.services.metrics import ProcessorMetrics

log = logging.getLogger("txnmon.stream")

class RulesWatcher:
    """Reloads the rules file when it changes (or on SIGHUP); a bad file is refused, old rules stay."""

    def __init__(self, path: Path, detector: Detector, metrics: ProcessorMetrics) -> None:
        self.path = path
        self.detector = detector
        self.metrics = metrics
        self.watch = FileWatch(path)

    def request(self, *_: object) -> None:
        self.watch.request()

    def maybe_reload(self) -> None:
        """Called between batches only, so one batch never mixes two rule sets."""
        if not self.watch.changed():
            return
        try:
            ruleset = load_rules(self.path)
        except RulesError as exc:
            log.error("rules reload refused, keeping version %s: %s", self.detector.version, exc,
                      extra={"rules_version": self.detector.version})
            return
        if ruleset.version == self.detector.version:
            return
        old = self.detector.version
        self.detector.use_rules(ruleset)
        self.metrics.rules.info({"version": ruleset.version})
        log.info("rules reloaded: %s -> %s", old, ruleset.version, extra={"rules_version": ruleset.version})
