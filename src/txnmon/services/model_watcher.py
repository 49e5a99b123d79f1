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

from txnmon.errors import ModelArtifactUnreadable, RetryableError, StopRequested, TxnmonError
from txnmon.pipeline.retry import with_retry

log = logging.getLogger("txnmon.stream")


Promotion = tuple[str, Any]  # the promoted version's id and when it was promoted


class ModelWatcher:
    """`current`: the model the next batch is scored with (None: no model in use).

    `promoted` returns the promotion (version, when) or None; a bare version id is taken as a promotion
    without a time. A promotion loaded or refused is not acted on again, except: a refusal for an
    unreadable or missing artifact is tried again after `retry_s`, and SIGHUP (`request`) tries any
    refused one again. Promoting the same version again is a new promotion (a new time)."""

    def __init__(self, promoted: Callable[[], Promotion | str | None], load: Callable[[str], Any], every_s: float,
                 clock: Callable[[], float] = time.monotonic, retry_s: float = 60.0) -> None:
        self.promoted = promoted
        self.load = load  # version -> a loaded model; raises ModelRefused (a TxnmonError) when refused
        self.every_s = every_s
        self.retry_s = retry_s
        self.clock = clock
        self.current: Any = None
        self._checked_at: float | None = None
        self._acted_on: Promotion | None = None  # the promotion last loaded or refused: not tried again
        self._refused_at: float | None = None  # set when _acted_on was refused
        self._retry_at: float | None = None  # when a refusal for an unreadable artifact is tried again

    def request(self, *_: object) -> None:
        self._checked_at = None
        if self._refused_at is not None:  # an operator's SIGHUP: try the refused promotion again
            self._acted_on = None

    @property
    def version(self) -> str | None:
        return None if self.current is None else str(self.current.version)

    def _promotion(self) -> Promotion | None:
        found = self.promoted()
        if found is None or isinstance(found, tuple):
            return found
        return (str(found), None)

    def start(self, should_stop: Callable[[], bool], on_retry: Callable[[str], None] = lambda _: None) -> None:
        """Before the first batch: load the promoted model, retrying outages until they end (or a stop is
        requested: StopRequested). The first batch after a start is often the retry of one judged with
        the model before a crash; judged without it, its verdicts would differ for no reason of their own."""
        promotion = with_retry(self._promotion, sink="model-registry", should_stop=should_stop, on_retry=on_retry)
        if promotion is not None:
            try:
                model = with_retry(lambda: self.load(promotion[0]), sink="model-artifact", should_stop=should_stop,
                                   on_retry=on_retry)
            except StopRequested:
                raise
            except TxnmonError as exc:
                self._refused(promotion, exc)
            except Exception as exc:  # as in maybe_reload: refused, logged, the stream starts
                self._refused(promotion, exc, trace=True)
            else:
                self._loaded(promotion, model)
        self._checked_at = self.clock()

    def maybe_reload(self) -> None:
        """Called between batches only, so one batch is scored by one model."""
        now = self.clock()
        if self._checked_at is not None and now - self._checked_at < self.every_s:
            return
        self._checked_at = now
        try:
            promotion = self._promotion()
        except TxnmonError as exc:  # an outage: the model in use stays, the stream goes on
            log.warning("promoted model not checked (keeping %s): %s", self.version, exc)
            return
        except Exception:  # a malformed pointer document (a KeyError...) must not stop the stream
            log.exception("promoted model not checked (keeping %s): unexpected error", self.version)
            return
        if promotion is None:  # none promoted, or demoted (`txnmon models demote`): the stream stops scoring
            if self.current is not None:
                log.warning("model %s demoted: scoring stops", self.version, extra={"model_version": self.version})
            self.current, self._acted_on, self._refused_at, self._retry_at = None, None, None, None
            return
        if promotion == self._acted_on and (self._retry_at is None or now < self._retry_at):
            return
        if self._refused_at is None and promotion[0] == self.version:
            self._acted_on = promotion  # the version in use promoted again: nothing to load
            return
        try:
            model = self.load(promotion[0])
        except RetryableError as exc:
            log.warning("model %s not loaded yet (keeping %s): %s", promotion[0], self.version, exc)
            return
        except TxnmonError as exc:
            self._refused(promotion, exc)
            return
        except Exception as exc:  # a parse error of the library, a malformed document: refused
            self._refused(promotion, exc, trace=True)
            return
        self._loaded(promotion, model)

    def _refused(self, promotion: Promotion, exc: BaseException, trace: bool = False) -> None:
        version = promotion[0]
        self._acted_on, self._refused_at = promotion, self.clock()
        # a missing or unreadable file may appear (storage mounted, a copy finished): tried again later
        self._retry_at = self._refused_at + self.retry_s if isinstance(exc, ModelArtifactUnreadable) else None
        log.error("model %s refused, keeping %s: %s", version, self.version, exc, extra={"model_version": version},
                  exc_info=exc if trace else None)

    def _loaded(self, promotion: Promotion, model: Any) -> None:
        version = promotion[0]
        self._acted_on, self._refused_at, self._retry_at = promotion, None, None
        old, self.current = self.version, model
        log.info("model loaded: %s -> %s", old, version, extra={"model_version": version})
