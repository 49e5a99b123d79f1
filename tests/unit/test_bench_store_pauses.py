"""bench/store_pauses.py: the stack's JVM collector pauses over a bench step, from `jstat -gc`."""

from __future__ import annotations

import pytest

from bench.store_pauses import GcTotals, parse_jstat_gc, pauses_between

G1 = """\
    S0C         S1C         S0U         S1U          EC           EU           OC           OU          MC         MU       CCSC      CCSU     YGC     YGCT     FGC    FGCT     CGC    CGCT       GCT
        0.0    122880.0         0.0    118784.0    1228800.0     303104.0   10584064.0    3077315.5    20736.0    20464.8    2368.0    2237.4     73    12.397     1     0.500     2     0.103    13.000
"""  # noqa: E501 (jstat's own line)
PARALLEL = """\
 S0C    S1C    S0U    S1U      EC       EU        OC         OU       MC     MU    CCSC   CCSU   YGC     YGCT    FGC    FGCT     CGC    CGCT     GCT
512.0  512.0   0.0    0.0    4096.0   1024.0    10240.0     0.0     4480.0 771.9  384.0   75.9      4    0.010   0      0.000   -          -    0.010
"""  # noqa: E501


def test_jstat_output_reads_as_collections_and_pause_seconds() -> None:
    assert parse_jstat_gc(G1) == GcTotals(76, 13.0)
    assert parse_jstat_gc(PARALLEL) == GcTotals(4, 0.01)  # a collector without concurrent cycles: "-"
    warned = "Warning: Unresolved Symbol: sun.gc.generation.2.space.0.capacity\n" + G1
    assert parse_jstat_gc(warned) == GcTotals(76, 13.0)


@pytest.mark.parametrize("text", ["", "attach failed: no such process", G1.splitlines()[0], "A B\n1 x"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not jstat"):
        parse_jstat_gc(text)


def test_pauses_between_two_readings() -> None:
    assert pauses_between(GcTotals(73, 12.397), GcTotals(78, 13.136)) == {
        "collections": 5, "pause_ms": 739.0, "mean_pause_ms": 147.8}
    assert pauses_between(GcTotals(5, 1.0), GcTotals(5, 1.0)) == {"collections": 0, "pause_ms": 0.0,
                                                                   "mean_pause_ms": 0.0}
    assert pauses_between(None, GcTotals(5, 1.0)) is None
