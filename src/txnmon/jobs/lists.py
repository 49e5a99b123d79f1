"""Named lists for analysts and the processor: add and remove entries (audited), list them, and
`ListsFeed`, which the processor calls between batches to pick up changes within seconds."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from txnmon.adapters.mongo import ListsRepository, MongoStore
from txnmon.core import lists as core
from txnmon.core.collection_names import LIST_ENTRIES, RULE_VERSIONS
from txnmon.core.rules.conditions import RULE_NAMES
from txnmon.core.rules.rulebook import parse_rules
from txnmon.errors import RulesError, StoreUnavailable, TxnmonError
from txnmon.jobs import audit

log = logging.getLogger("txnmon.stream")


def known_rule_names(rules_file: Path) -> tuple[str, ...]:
    """The rules and the typologies a trusted_users entry may silence: the built-in names and the
    typologies of the rules file in use (a file that does not load adds none; the processor says why)."""
    from txnmon.core.rules import load_rules

    try:
        typologies = tuple(name for name in load_rules(rules_file).typologies if name not in RULE_NAMES)
    except RulesError:
        typologies = ()
    return (*RULE_NAMES, *typologies)


def add_entry(store: MongoStore, list_name: str, value: str, *, reason: str, by: str | None = None,
              expires_at: dt.datetime | None = None, rule: str | None = None,
              now: dt.datetime | None = None, known_rules: Iterable[str] = RULE_NAMES,
              valid_from: dt.datetime | None = None) -> dict[str, Any]:
    when = now or dt.datetime.now(dt.UTC)
    entry = core.make_entry(list_name, value, reason=reason, by=audit.who(by), now=when, expires_at=expires_at,
                            rule=rule, known_rules=known_rules, valid_from=valid_from)
    before = ListsRepository(store).put_entry(entry)
    audit.record(store, "list.add", by=entry["added_by"], target=entry["_id"], before=before, after=entry, now=when)
    return entry


def remove_entry(store: MongoStore, list_name: str, value: str, *, rule: str | None = None, by: str | None = None,
                 now: dt.datetime | None = None) -> dict[str, Any]:
    when, analyst = now or dt.datetime.now(dt.UTC), audit.who(by)
    entry_id = core.entry_id(list_name, core.normalise(value), rule)
    fields = {"removed_at": when, "removed_by": analyst}
    before = ListsRepository(store).remove_entry(entry_id, fields)
    if before is None:
        raise core.ListError(f"no entry {entry_id!r} in the lists (or it was removed before)")
    after = {**before, **fields}
    audit.record(store, "list.remove", by=analyst, target=entry_id, before=before, after=after, now=when)
    return after


def entries(store: MongoStore, list_name: str | None = None, *, include_inactive: bool = False,
            now: dt.datetime | None = None) -> list[dict[str, Any]]:
    when = now or dt.datetime.now(dt.UTC)
    query: dict[str, Any] = {"list": list_name} if list_name else {}
    found = store.find(LIST_ENTRIES, query, sort=[("list", 1), ("key", 1)])
    return found if include_inactive else [e for e in found if core.is_active(e, when)]


def live_lists(store: MongoStore) -> core.ListIndex:
    """Every entry not removed, indexed as the detector looks them up: the detector asks each one
    whether it held at the transaction's event time, never at the wall clock's now."""
    return core.ListIndex.build(ListsRepository(store).live_entries())


def record_rules_version(store: MongoStore, version: str, rules_file: Path, by: str = "processor",
                         now: dt.datetime | None = None) -> bool:
    """Store the rules text under its version (once) and audit its first load (once, whatever the
    number of processors). True when the version is recorded; False if the file on disk no longer
    has that version (it changed again: the reload that follows records the new one)."""
    try:
        text = Path(rules_file).read_text(encoding="utf-8")
        if parse_rules(text, str(rules_file)).version != version:
            return False
    except (OSError, RulesError):
        return False
    when = now or dt.datetime.now(dt.UTC)
    store.insert_missing(RULE_VERSIONS, [{"_id": version, "text": text, "path": str(rules_file),
                                          "first_loaded_at": when}])
    audit.record(store, "rules.loaded", by=by, target=version, before=None, after={"version": version}, now=when,
                 entry_id=f"rules.loaded:{version}")
    return True


class ListsFeed:
    """Between batches: every `every_s` seconds, reload the live list entries into the detector when they
    changed, and record each rules version the detector runs (text in `rule_versions`, one audit entry).

    Whether they changed is one document's counter (`ListsRepository.change_mark`): reading every entry
    each time held a batch up for 56-86 ms with 10,000 entries on the local store, and grows with the
    lists. They are read again every FULL_RELOAD_S all the same, for a change made around the repository.
    A MongoDB outage (or a refusal) keeps the lists loaded last (logged); it never stops the processor.
    """

    FULL_RELOAD_S = 300.0

    def __init__(self, store: MongoStore, detector: Any, rules_file: Path, every_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.detector = detector
        self.rules_file = Path(rules_file)
        self.every_s = every_s
        self.clock = clock
        self._checked_at: float | None = None
        self._loaded_at: float | None = None
        self._mark: int | None = None  # the change mark of the entries loaded last
        self._recorded: set[str] = set()

    def maybe_reload(self) -> None:
        started = self.clock()
        if self._checked_at is not None and started - self._checked_at < self.every_s:
            return
        self._checked_at = started
        try:
            mark = ListsRepository(self.store).change_mark()  # before the entries: a change after it is seen next
            if mark != self._mark or self._loaded_at is None or started - self._loaded_at >= self.FULL_RELOAD_S:
                self.detector.use_lists(live_lists(self.store))
                self._mark, self._loaded_at = mark, started
            version = self.detector.version
            if version not in self._recorded and record_rules_version(self.store, version, self.rules_file):
                self._recorded.add(version)
        except StoreUnavailable as exc:
            log.warning("lists not reloaded (keeping the last ones): %s", exc)
        except TxnmonError as exc:  # e.g. refused by the server: the lists stay, the stream goes on
            log.error("lists not reloaded (keeping the last ones): %s", exc)
