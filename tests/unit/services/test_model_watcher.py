"""Hot reload of the promoted model (src/txnmon/services/model_watcher.py): a new promotion is loaded,
a refused artifact is logged with its reason and the model in use stays, an outage changes nothing."""

from __future__ import annotations

import logging

from txnmon.errors import ModelRefused, StoreUnavailable
from txnmon.services.model_watcher import ModelWatcher


class Model:
    def __init__(self, version: str) -> None:
        self.version = version


class Registry:
    def __init__(self) -> None:
        self.pointer: str | None = None
        self.refused: dict[str, str] = {}
        self.down = False
        self.loads: list[str] = []

    def promoted(self) -> str | None:
        if self.down:
            raise StoreUnavailable("mongodb down")
        return self.pointer

    def load(self, version: str) -> Model:
        self.loads.append(version)
        if version in self.refused:
            raise ModelRefused(self.refused[version])
        return Model(version)


def watcher(registry: Registry) -> tuple[ModelWatcher, list[float]]:
    now = [0.0]
    return ModelWatcher(registry.promoted, registry.load, 2.0, clock=lambda: now[0]), now


def test_no_promotion_means_no_model():
    w, _ = watcher(Registry())
    w.maybe_reload()
    assert w.current is None and w.version is None


def test_a_new_promotion_is_loaded_at_the_next_check():
    reg = Registry()
    w, now = watcher(reg)
    reg.pointer = "rm-1"
    w.maybe_reload()
    assert w.version == "rm-1"
    reg.pointer = "rm-2"
    now[0] = 1.0
    w.maybe_reload()
    assert w.version == "rm-1"  # not checked again before every_s
    now[0] = 2.5
    w.maybe_reload()
    assert w.version == "rm-2"
    now[0] = 5.0
    w.maybe_reload()
    assert reg.loads == ["rm-1", "rm-2"]  # the same pointer is not loaded again


def test_a_refused_artifact_is_logged_and_the_previous_model_stays(caplog):
    reg = Registry()
    w, now = watcher(reg)
    reg.pointer = "rm-1"
    w.maybe_reload()
    reg.pointer = "rm-bad"
    reg.refused["rm-bad"] = "model rm-bad: artifact x has sha256 abc..., registered def...: corrupt; not loaded"
    now[0] = 3.0
    with caplog.at_level(logging.ERROR, logger="txnmon.stream"):
        w.maybe_reload()
    assert w.version == "rm-1"
    assert "model rm-bad refused, keeping rm-1" in caplog.text and "sha256" in caplog.text
    now[0] = 6.0
    w.maybe_reload()
    assert reg.loads == ["rm-1", "rm-bad"]  # refused once, not retried every few seconds


def test_an_outage_keeps_the_model_and_the_check_comes_again():
    reg = Registry()
    w, now = watcher(reg)
    reg.pointer = "rm-1"
    w.maybe_reload()
    reg.down = True
    reg.pointer = "rm-2"
    now[0] = 3.0
    w.maybe_reload()
    assert w.version == "rm-1"
    reg.down = False
    now[0] = 6.0
    w.maybe_reload()
    assert w.version == "rm-2"


def test_sighup_checks_at_once():
    reg = Registry()
    w, _ = watcher(reg)
    w.maybe_reload()
    reg.pointer = "rm-1"
    w.request()
    w.maybe_reload()
    assert w.version == "rm-1"


def test_any_error_while_loading_or_reading_the_pointer_keeps_the_model_in_use(caplog):
    # issue 32: a LightGBM parse error or a KeyError on a malformed registry document is not a TxnmonError;
    # it must not escape into the processor loop (a crash loop), only be logged with its traceback
    reg = Registry()
    w, now = watcher(reg)
    reg.pointer = "rm-1"
    w.maybe_reload()
    reg.pointer = "rm-unparsable"

    def broken_load(version):
        raise ValueError("Unknown model format or submodel type in model file")

    w.load = broken_load
    now[0] = 3.0
    with caplog.at_level(logging.ERROR, logger="txnmon.stream"):
        w.maybe_reload()
    assert w.version == "rm-1"
    assert "rm-unparsable" in caplog.text and "Traceback" in caplog.text

    def malformed_pointer():
        raise KeyError("version")

    w.promoted = malformed_pointer
    now[0] = 6.0
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="txnmon.stream"):
        w.maybe_reload()
    assert w.version == "rm-1" and "KeyError" in caplog.text


def test_a_refused_version_promoted_again_or_after_sighup_is_tried_again():
    # issue 32: the operator fixes the artifact and promotes the same version again (a new promotion
    # time), or sends SIGHUP: the version is loaded, not skipped for ever because its id was refused once
    reg = Registry()
    w, now = watcher(reg)
    at = ["2026-12-06T10:00"]
    w.promoted = lambda: (reg.pointer, at[0])
    reg.pointer = "rm-1"
    reg.refused["rm-1"] = "sha256 mismatch"
    w.maybe_reload()
    assert w.version is None
    del reg.refused["rm-1"]
    at[0] = "2026-12-06T10:05"  # promoted again
    now[0] = 3.0
    w.maybe_reload()
    assert w.version == "rm-1" and reg.loads == ["rm-1", "rm-1"]
    reg.pointer, reg.refused["rm-2"] = "rm-2", "sha256 mismatch"
    now[0] = 6.0
    w.maybe_reload()
    assert w.version == "rm-1"
    del reg.refused["rm-2"]
    now[0] = 6.5
    w.request()  # SIGHUP: check now, and try a refused version again
    w.maybe_reload()
    assert w.version == "rm-2" and reg.loads == ["rm-1", "rm-1", "rm-2", "rm-2"]


def test_a_missing_artifact_is_tried_again_after_a_while():
    from txnmon.errors import ModelArtifactUnreadable

    reg = Registry()
    w, now = watcher(reg)
    missing = [True]
    plain_load = reg.load

    def load(version):
        if missing[0]:
            reg.loads.append(version)
            raise ModelArtifactUnreadable(f"model {version}: cannot read artifact: No such file or directory")
        return plain_load(version)

    w.load = load
    reg.pointer = "rm-1"
    w.maybe_reload()
    assert w.version is None
    now[0] = 3.0
    w.maybe_reload()
    assert reg.loads == ["rm-1"]  # not every few seconds
    missing[0] = False  # the shared storage is mounted again
    now[0] = w.retry_s + 1
    w.maybe_reload()
    assert w.version == "rm-1"


def test_a_demoted_model_is_dropped_and_a_later_promotion_loads_again():
    # issue 32: `txnmon models demote` leaves the pointer saying none: the stream stops scoring
    reg = Registry()
    w, now = watcher(reg)
    reg.pointer = "rm-1"
    w.maybe_reload()
    assert w.version == "rm-1"
    reg.pointer = None
    now[0] = 3.0
    w.maybe_reload()
    assert w.current is None
    reg.pointer = "rm-1"
    now[0] = 6.0
    w.maybe_reload()
    assert w.version == "rm-1" and reg.loads == ["rm-1", "rm-1"]
