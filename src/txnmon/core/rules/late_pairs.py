"""Late arrivals judged in both directions.

Verdicts follow arrival order: an event judges itself against the earlier events that have
arrived. When an event arrives after later events of its user, those later events were judged
without it, so a pair it completes (a trip faster than a plane, the fourth checkout in ten
minutes, the third decline) would go unseen. `completed_by` re-weighs the typologies that look at
such pairs on each later event within their windows, with and without the late one, and returns
the alerts the late event completes: raised on the later transaction (the one the pair makes
suspicious, as a time-ordered pass would), when the late one arrives.

The pair signals only ever gain a hit when an event is added (counts in a window, any too-fast
pair; see src/txnmon/core/rules/places.py for the one exception and how it is bounded), so the
alerts of the same input in any arrival order within the lateness bound are the same (transaction,
typology) pairs. A typology whose alert already exists is not raised again at a higher severity
(alerts are written once); that is the one thing the arrival order can still change.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence

from txnmon.core.rules.evidence import TypologyHit, TypologyPlan, weigh
from txnmon.core.rules.rulebook import RuleSet
from txnmon.core.rules.state import Event

# the signals that pair an event with events around it in a short window
PAIR_SIGNALS = frozenset({"fast_travel", "velocity", "declines", "tiny_amounts"})


def pair_plans(plans: Sequence[TypologyPlan]) -> list[TypologyPlan]:
    """The typologies weighing at least one pair signal."""
    return [p for p in plans if any(signal in PAIR_SIGNALS for signal, _, _ in p.steps)]


def pair_window(ruleset: RuleSet, plans: Sequence[TypologyPlan]) -> dt.timedelta:
    """How far after a late event a later one can still pair with it."""
    used = {signal for p in plans for signal, _, _ in p.steps if signal in PAIR_SIGNALS}
    windows = [getattr(ruleset.signals, s).window for s in used]
    return max(windows, default=dt.timedelta(0))


def completed_by(late: Event, events: Sequence[Event], plans: Sequence[TypologyPlan], ruleset: RuleSet,
                 window: dt.timedelta, modelled: bool = False) -> list[tuple[Event, TypologyHit]]:
    """(later event, hit) for each typology that a later event within `window` of `late` reaches
    with `late` among its earlier events and not without it.

    `events` is the user's history (sorted by event time) before `late` joins it."""
    others = [e for e in events if e.transaction_id != late.transaction_id]
    times = [e.event_time for e in others]
    out = []
    for i in range(bisect.bisect_left(times, late.event_time), len(others)):
        later = others[i]
        if later.event_time - late.event_time > window:
            break
        # the later event's earlier arrivals (event time not after its own), with and without the late one
        end = bisect.bisect_right(times, later.event_time)
        without = [e for e in others[:end] if e.transaction_id != later.transaction_id]
        with_late = list(without)
        bisect.insort(with_late, late, key=lambda e: e.key)
        # with the model in use (`modelled`) the raised thresholds hold, though the later event's score is not
        # computed again (its signal is absent): a late arrival never lowers the bar the model set
        before = {h.name for h in weigh(plans, later, without, ruleset, modelled=modelled)}
        out += [(later, hit) for hit in weigh(plans, later, with_late, ruleset, modelled=modelled)
                if hit.name not in before]
    return out
