"""The rules file: YAML an analyst edits, validated into typed, immutable settings.

A file that does not validate raises `RulesError` listing every problem with its path
(`rules.velocity.window: ...`), so a broken edit is refused before it changes anything.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from txnmon.core.versioned_files import parse_versioned
from txnmon.errors import RulesError

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


# --- signals: what a transaction shows given the user's history; typologies weigh them into alerts ---


class SignalBase(_Strict):
    pass


class HighAmountSignal(SignalBase):
    threshold: float = Field(50_000, ge=0)  # amount strictly above this


class AmountVsUsualSignal(SignalBase):
    factor: float = Field(3.0, gt=1)          # amount at least this many times the user's usual (median) purchase ...
    min_amount: float = Field(10_000, ge=0)   # ... and at least this much (small baskets tripling are not news)
    lookback: Duration = dt.timedelta(days=30)
    min_history: int = Field(3, ge=1)         # successful purchases needed to know what "usual" is


class NewLocationSignal(SignalBase):
    lookback: Duration = dt.timedelta(days=30)
    min_history: int = Field(3, ge=1)         # earlier transactions needed before a place can be "new"


class NewPaymentMethodSignal(SignalBase):
    lookback: Duration = dt.timedelta(days=30)
    min_history: int = Field(3, ge=1)         # earlier transactions with a known payment method


class NewCountrySignal(SignalBase):
    """A country the user did not buy from within the lookback (places the gazetteer cannot place
    in a country tell nothing)."""

    lookback: Duration = dt.timedelta(days=30)
    min_history: int = Field(1, ge=1)         # earlier transactions in a known country


class FastTravelSignal(SignalBase):
    """An earlier place within the window is further than a plausible trip in the time between
    (two countries: at least the distance between them; places the gazetteer does not know: any
    change of place within `unknown_city_window`)."""

    window: Duration = dt.timedelta(hours=6)  # compare with the earlier transactions this recent
    max_speed_kmh: float = Field(900, gt=0)
    unknown_city_window: Duration = dt.timedelta(minutes=30)  # a place not in the gazetteer: a change within this
    # a move back to a place used within this lookback (before the move away) is a return, not a
    # trip (None: judge every move)
    usual_lookback: Duration | None = dt.timedelta(days=30)
    # events reach the processor at most this long after later ones: a return is judged only from
    # places used longer ago than this, which have all arrived, so any arrival order within it
    # gives the same verdicts
    lateness: Duration = dt.timedelta(minutes=10)


class FarFromUsualSignal(SignalBase):
    """Further than `min_km` from every place the user used within the lookback (cities missing from
    the coordinates table are not measured)."""

    min_km: float = Field(2_000, gt=0)
    lookback: Duration = dt.timedelta(days=30)
    min_history: int = Field(3, ge=1)


class TinyAmountsSignal(SignalBase):
    max_amount: float = Field(250, gt=0)      # an amount at most this is "tiny" ...
    min_count: int = Field(3, ge=2)           # ... and at least this many (this one included) ...
    window: Duration = dt.timedelta(minutes=15)  # ... within this window


class DeclinesSignal(SignalBase):
    min_count: int = Field(3, ge=1)           # at least this many failed payments (this one included) ...
    window: Duration = dt.timedelta(minutes=30)


class RefundsSignal(SignalBase):
    min_count: int = Field(3, ge=1)           # at least this many refunds (this one included) ...
    window: Duration = dt.timedelta(hours=24)


class VelocitySignal(SignalBase):
    """Purchases in a window, where a multi-item checkout (same payment method and place, less than
    `checkout_gap` after the checkout's first item) counts as one."""

    min_count: int = Field(4, ge=2)           # at least this many checkouts (this one included) ...
    window: Duration = dt.timedelta(minutes=10)
    checkout_gap: Duration = dt.timedelta(seconds=60)


class ModelScoreSignal(SignalBase):
    """The promoted risk model's score (docs/model.md): present when a model is loaded and its score for
    the transaction is at least `threshold`. Without a promoted model it is never present."""

    threshold: float = Field(0.8, gt=0, le=1)  # fraud probability, 0..1
    top_features: int = Field(3, ge=1, le=10)  # contributing features kept in the explanation


class Signals(_Strict):
    high_amount: HighAmountSignal = HighAmountSignal()
    amount_vs_usual: AmountVsUsualSignal = AmountVsUsualSignal()
    new_location: NewLocationSignal = NewLocationSignal()
    new_payment_method: NewPaymentMethodSignal = NewPaymentMethodSignal()
    new_country: NewCountrySignal = NewCountrySignal()
    fast_travel: FastTravelSignal = FastTravelSignal()
    far_from_usual: FarFromUsualSignal = FarFromUsualSignal()
    tiny_amounts: TinyAmountsSignal = TinyAmountsSignal()
    declines: DeclinesSignal = DeclinesSignal()
    refunds: RefundsSignal = RefundsSignal()
    velocity: VelocitySignal = VelocitySignal()
    model_score: ModelScoreSignal = ModelScoreSignal()


SignalName = Literal["high_amount", "amount_vs_usual", "new_location", "new_payment_method", "new_country",
                     "fast_travel", "far_from_usual", "tiny_amounts", "declines", "refunds", "velocity", "model_score"]


class Typology(_Strict):
    """Weighted signals against thresholds: the sum of the weights of the signals present on a
    transaction raises an alert of the highest severity whose threshold it reaches."""

    enabled: bool = True
    mode: Mode = "live"
    signals: dict[SignalName, float] = Field(min_length=1)  # signal -> weight (may be negative: a counter-signal)
    thresholds: dict[Severity, float] = Field(min_length=1)  # severity -> score needed for it
    # the thresholds while a promoted model scores the transaction (issue 32): the model as a confirmation,
    # raising the bar it must help reach, without changing a verdict when no model is promoted
    thresholds_with_model: dict[Severity, float] | None = Field(None, min_length=1)
    suppress_for: Duration | None = None

    @model_validator(mode="after")
    def _thresholds_rise_with_severity(self) -> Typology:
        both = (("thresholds", self.thresholds), ("thresholds_with_model", self.thresholds_with_model))
        for name, thresholds in both:
            if thresholds is None:
                continue
            levels = [thresholds[s] for s in ("low", "medium", "high") if s in thresholds]
            if levels != sorted(levels) or len(set(levels)) != len(levels):
                raise ValueError(f"{name} must rise with severity (low < medium < high)")
            if min(levels) <= 0:
                raise ValueError(f"{name} must be positive")
            if sum(w for w in self.signals.values() if w > 0) < min(levels):
                raise ValueError(f"the signals' weights can never reach the lowest of {name}")
        raised = self.thresholds_with_model
        if raised is not None:
            if "model_score" not in self.signals:
                raise ValueError("thresholds_with_model is for a typology that weighs model_score (give it a weight)")
            # a confirmation raises the bar it names: the same severities, none lower (a model in use never
            # makes an alert easier to raise than the rules alone)
            if set(raised) != set(self.thresholds) or any(raised[s] < self.thresholds[s] for s in raised):
                raise ValueError("thresholds_with_model must give the severities of thresholds, each at least as high")
        return self

    def thresholds_for(self, modelled: bool) -> dict[Severity, float]:
        """The thresholds in force: `thresholds_with_model` when a model scored the transaction and the
        typology has them, else `thresholds`."""
        return self.thresholds_with_model if modelled and self.thresholds_with_model else self.thresholds

    def severity_of(self, total: float, modelled: bool = False) -> Severity | None:
        found = None
        thresholds = self.thresholds_for(modelled)
        for severity in ("low", "medium", "high"):
            need = thresholds.get(severity)  # type: ignore[call-overload]
            if need is not None and total >= need:
                found = severity
        return found  # type: ignore[return-value]


class StateLimits(_Strict):
    max_users: int = Field(1_000_000, ge=1)
    max_events_per_user: int = Field(200, ge=2)


class RuleSet(_Strict):
    """A validated rules file. `version` is the file's label plus a hash of its content."""

    version: str = ""
    state: StateLimits = StateLimits()
    rules: Rules = Rules()
    signals: Signals = Signals()
    # typology name -> typology; a file without this section raises alerts from its rules only
    typologies: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")], Typology] = {}

    @model_validator(mode="after")
    def _typology_names_are_free(self) -> RuleSet:
        taken = {name for name in type(self.rules).model_fields if getattr(self.rules, name).enabled}
        clash = sorted(n for n, t in self.typologies.items() if t.enabled and n in taken)
        if clash:
            raise ValueError(f"typologies {', '.join(clash)} share a name with an enabled rule "
                             "(alerts are named by it): rename one or disable the rule")
        return self

    def alert_names(self) -> set[str]:
        """Every name an alert raised under this file may carry: its rules (enabled or not: alerts of
        before a rule was disabled keep its name) and its typologies."""
        return set(type(self.rules).model_fields) | set(self.typologies)

    def used_signals(self) -> list[str]:
        """Signals some enabled typology weighs, in the catalogue's order."""
        used = {s for t in self.typologies.values() if t.enabled for s in t.signals}
        return [name for name in type(self.signals).model_fields if name in used]

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
        sig = self.signals
        looks = {"amount_vs_usual": sig.amount_vs_usual.lookback, "new_location": sig.new_location.lookback,
                 "new_payment_method": sig.new_payment_method.lookback, "new_country": sig.new_country.lookback,
                 "fast_travel": max(sig.fast_travel.window, sig.fast_travel.usual_lookback or sig.fast_travel.window),
                 "far_from_usual": sig.far_from_usual.lookback, "tiny_amounts": sig.tiny_amounts.window,
                 "declines": sig.declines.window, "refunds": sig.refunds.window, "velocity": sig.velocity.window}
        windows += [looks[name] for name in self.used_signals() if name in looks]
        windows += [t.suppress_for for t in self.typologies.values() if t.enabled and t.suppress_for]
        # a repeat is suppressed for this long after its alert: that alert must be remembered as long
        windows += [rule.suppress_for for rule in (r.high_amount, r.velocity, r.unusual_location, r.impossible_travel,
                                                   r.high_value_unusual_location, r.excessive_refunds,
                                                   r.repeated_failed_payments) if rule.enabled and rule.suppress_for]
        return max(windows)


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Validate rules YAML text; the returned version is `<label>+<sha256[:10]>` of the text."""
    return parse_versioned(text, source, RuleSet, RulesError, "rules")


def load_rules(path: Path | str) -> RuleSet:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror}") from None
    return parse_rules(text, str(path))
