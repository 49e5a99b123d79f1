"""The garbage collector's policy for the long-running processor (issue 29).

Python's defaults (a young-generation collection every 700 new containers) suit short scripts. The
processor makes tens of thousands of short-lived dicts and tuples per batch (records, documents,
decoded events), so the youngest generation was collected dozens of times a batch, each time promoting
what the batch still held into older generations that later collections scan again. Measured with
`bench/cpu.py --rows 20000` (1-day histories, one session, µs of CPU per transaction): 364 with the
defaults, 327 with the start-up heap frozen, 316 frozen and with a threshold of 10,000, 304 with the
collector off. Reference cycles are still collected; only less often.
"""

from __future__ import annotations

import gc

# young-generation threshold: a batch of 2,000 transactions then triggers a few collections, not dozens
YOUNG_THRESHOLD = 10_000


def tune_collector() -> None:
    """Keep what lives as long as the process (gazetteer, rules, clients, restored state) out of the
    collections, and collect the young generation less often. Called at start-up and after each state
    restore; never lowers a threshold someone set higher."""
    gc.freeze()  # no gc.collect() first: it alone took 1.3 s at start-up on a busy machine
    young, middle, old = gc.get_threshold()
    if young < YOUNG_THRESHOLD:
        gc.set_threshold(YOUNG_THRESHOLD, middle, old)
