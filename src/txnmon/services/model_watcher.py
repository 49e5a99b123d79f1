"""Hot reload of the promoted risk model: the promotion pointer is read between batches (every few
seconds, or at once on SIGHUP), and a newly promoted version is loaded with its checksum and feature
version checked (src/txnmon/jobs/models.py). A refused artifact (corrupt, changed, of another feature
version, missing) is logged with the reason and the model in use stays; so does an outage. Without a
promoted model there is none in use, and the `model_score` signal is absent (docs/model.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from txnmon.errors import RetryableError, StopRequested, TxnmonError
from txnmon.pipeline.retry import with_retry

log = logging.getLogger("txnmon.stream")


class ModelWatcher:
    """`current`: the model the next batch is scored with (None: no model in use)."""

    def __init__(self, promoted: Callable[[], str | None], load: Callable[[str], Any], every_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.promoted = promoted  # the promoted version's id, or None
        self.load = load  # version -> a loaded model; raises ModelRefused (a TxnmonError) when refused
        self.every_s = every_s
        self.clock = clock
        self.current: Any = None
        self._checked_at: float | None = None
        self._acted_on: str | None = None  # the pointer's version last loaded or refused: not tried again

    def request(self, *_: object) -> None:
        self._checked_at = None

    @property
    def version(self) -> str | None:
        return None if self.current is None else str(self.current.version)

    def start(self, should_stop: Callable[[], bool], on_retry: Callable[[str], None] = lambda _: None) -> None:
        """Before the first batch: load the promoted model, retrying outages until they end (or a stop is
        requested: StopRequested). The first batch after a start is often the retry of one judged with
        the model before a crash; judged without it, its verdicts would differ for no reason of their own."""
        version = with_retry(self.promoted, sink="model-registry", should_stop=should_stop, on_retry=on_retry)
        if version is not None:
            try:
                model = with_retry(lambda: self.load(version), sink="model-artifact", should_stop=should_stop,
                                   on_retry=on_retry)
            except StopRequested:
                raise
            except TxnmonError as exc:
                self._refused(version, exc)
            except Exception as exc:  # as in maybe_reload: refused, logged, the stream starts
                self._refused(version, exc, trace=True)
            else:
                self._loaded(version, model)
        self._checked_at = self.clock()

    def maybe_reload(self) -> None:
        """Called between batches only, so one batch is scored by one model."""
        now = self.clock()
        if self._checked_at is not None and now - self._checked_at < self.every_s:
            return
        self._checked_at = now
        try:
            version = self.promoted()
        except TxnmonError as exc:  # an outage: the model in use stays, the stream goes on
            log.warning("promoted model not checked (keeping %s): %s", self.version, exc)
            return
        except Exception:  # a malformed pointer document (a KeyError...) must not stop the stream
            log.exception("promoted model not checked (keeping %s): unexpected error", self.version)
            return
        if version is None or version == self._acted_on:
            return
        try:
            model = self.load(version)
        except RetryableError as exc:
            log.warning("model %s not loaded yet (keeping %s): %s", version, self.version, exc)
            return
        except TxnmonError as exc:
            self._refused(version, exc)
            return
        except Exception as exc:  # a parse error of the library, a malformed document: refused
            self._refused(version, exc, trace=True)
            return
        self._loaded(version, model)

    def _refused(self, version: str, exc: BaseException, trace: bool = False) -> None:
        self._acted_on = version
        log.error("model %s refused, keeping %s: %s", version, self.version, exc, extra={"model_version": version},
                  exc_info=exc if trace else None)

    def _loaded(self, version: str, model: Any) -> None:
        self._acted_on = version
        old, self.current = self.version, model
        log.info("model loaded: %s -> %s", old, version, extra={"model_version": version})
