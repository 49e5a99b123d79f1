"""The rules file: YAML an analyst edits, validated into typed, immutable settings.

A file that does not validate raises `RulesError` listing every problem with its path
(`rules.velocity.window: ...`), so a broken edit is refused before it changes anything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from include.errors import RulesError

__all__ = ["RuleSet", "RulesError", "load_rules", "parse_duration", "parse_rules"]

Severity = Literal["low", "medium", "high"]
Mode = Literal["live", "shadow"]
SEVERITY_ORDER = {"low": 0, "medium": 1, "high": 2}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(value: Any) -> dt.timedelta:
    """'90s', '10m', '24h', '30d' (or a timedelta) to a positive timedelta."""
    if isinstance(value, dt.timedelta):
        delta = value
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError("expected a duration like 90s, 10m, 24h or 30d")
        delta = dt.timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    if delta <= dt.timedelta(0):
        raise ValueError("duration must be positive")
    return delta


Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleBase(_Strict):
    enabled: bool = True
    mode: Mode = "live"  # shadow: evaluated and stored apart, never raised
    severity: Severity
    score: float = Field(ge=0, le=100)
    # after an alert for a user, further hits of this rule for that user within this window
    # (event time) are recorded as suppressed, linked to the first, instead of raised
    suppress_for: Duration | None = None


class HighAmount(RuleBase):
    severity: Severity = "high"
    score: float = Field(60, ge=0, le=100)
    threshold: float = Field(50_000, ge=0)


class Velocity(RuleBase):
    severity: Severity = "medium"
    score: float = Field(40, ge=0, le=100)
    max_transactions: int = Field(3, ge=1)
    window: Duration = dt.timedelta(minutes=10)


class UnusualLocation(RuleBase):
    severity: Severity = "low"
    score: float = Field(20, ge=0, le=100)
    lookback: Duration = dt.timedelta(days=30)
    min_history: int = Field(3, ge=1)
    max_known_locations: int = Field(2, ge=1)


class ImpossibleTravel(RuleBase):
    severity: Severity = "high"
    score: float = Field(70, ge=0, le=100)
    max_speed_kmh: float = Field(900, gt=0)
    window: Duration = dt.timedelta(minutes=30)


class HighValueUnusualLocation(RuleBase):
    severity: Severity = "high"
    score: float = Field(80, ge=0, le=100)
    min_amount: float = Field(10_000, ge=0)


class ExcessiveRefunds(RuleBase):
    severity: Severity = "medium"
    score: float = Field(40, ge=0, le=100)
    max_refunds: int = Field(2, ge=0)
    window: Duration = dt.timedelta(hours=24)


class RepeatedFailedPayments(RuleBase):
    severity: Severity = "medium"
    score: float = Field(40, ge=0, le=100)
    max_failures: int = Field(2, ge=0)
    window: Duration = dt.timedelta(minutes=30)


class ListCheck(_Strict):
    list: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    field: Literal["user_id", "location", "payment_method", "country", "product", "category"]


class Listed(RuleBase):
    """Fires when a field of the transaction is on a named list (`txnmon lists`) at its event time.

    `suppress_for` is not supported here (an entry is already the analyst's decision)."""

    severity: Severity = "high"
    score: float = Field(70, ge=0, le=100)
    checks: tuple[ListCheck, ...] = (ListCheck(list="blocked_users", field="user_id"),
                                     ListCheck(list="risky_locations", field="location"))


class Rules(_Strict):
    high_amount: HighAmount = HighAmount()
    velocity: Velocity = Velocity()
    unusual_location: UnusualLocation = UnusualLocation()
    impossible_travel: ImpossibleTravel = ImpossibleTravel()
    high_value_unusual_location: HighValueUnusualLocation = HighValueUnusualLocation()
    excessive_refunds: ExcessiveRefunds = ExcessiveRefunds()
    repeated_failed_payments: RepeatedFailedPayments = RepeatedFailedPayments()
    listed: Listed = Listed()


class StateLimits(_Strict):
    max_users: int = Field(1_000_000, ge=1)
    max_events_per_user: int = Field(200, ge=2)


class RuleSet(_Strict):
    """A validated rules file. `version` is the file's label plus a hash of its content."""

    version: str = ""
    state: StateLimits = StateLimits()
    rules: Rules = Rules()

    def history_window(self) -> dt.timedelta:
        """How far back any enabled rule looks: user state older than this is never needed."""
        r = self.rules
        windows = [dt.timedelta(minutes=1)]
        if r.velocity.enabled:
            windows.append(r.velocity.window)
        if r.unusual_location.enabled or r.high_value_unusual_location.enabled:
            windows.append(r.unusual_location.lookback)
        if r.impossible_travel.enabled:
            windows.append(r.impossible_travel.window)
        if r.excessive_refunds.enabled:
            windows.append(r.excessive_refunds.window)
        if r.repeated_failed_payments.enabled:
            windows.append(r.repeated_failed_payments.window)
        # a repeat is suppressed for this long after its alert: that alert must be remembered as long
        windows += [rule.suppress_for for rule in (r.high_amount, r.velocity, r.unusual_location, r.impossible_travel,
                                                   r.high_value_unusual_location, r.excessive_refunds,
                                                   r.repeated_failed_payments) if rule.enabled and rule.suppress_for]
        return max(windows)


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown setting (typo?)"
        lines.append(f"{where}: {msg}")
    return "\n  ".join(lines)


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Validate rules YAML text; the returned version is `<label>+<sha256[:10]>` of the text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # the position and the parser's complaint, never the file's text (task logs are widely read)
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise RulesError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', None) or 'parse error'}"
                         ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RulesError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:10]
    label = str(data.get("version", "")).strip()
    data["version"] = f"{label}+{digest}" if label else digest
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        raise RulesError(f"{source}: invalid rules:\n  {_describe(exc)}") from None


def load_rules(path: Path | str) -> RuleSet:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror}") from None
    return parse_rules(text, str(path))
