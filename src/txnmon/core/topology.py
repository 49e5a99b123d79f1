"""The partition layout the processor relies on, judged from the partition counts Kafka reports.

The state changelog's partition p holds the users of the by-user topic's partition p (a member
restores partition p's users from it), so the two must have the same count. Every topic keeps
the count it was created with: `txnmon init` never changes it, so TOPIC_PARTITIONS says nothing
about topics that existed before, and more processors than the real count sit idle. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping


def partition_problems(counts: Mapping[str, int], *, by_user: str, state: str,
                       wanted: int) -> tuple[list[str], list[str]]:
    """(errors, warnings) of the topics in `counts` (name -> partitions), given TOPIC_PARTITIONS `wanted`."""
    errors, warnings = [], []
    if by_user in counts and state in counts and counts[by_user] != counts[state]:
        errors.append(f"{by_user} has {counts[by_user]} partitions and {state} {counts[state]}: the state of "
                      f"by-user partition p is kept in state partition p, so they must be equal (recreate "
                      f"{state} with {counts[by_user]} partitions, or both topics; docs/scaling.md)")
    for topic, partitions in counts.items():
        if partitions != wanted:
            warnings.append(f"{topic} has {partitions} partitions, TOPIC_PARTITIONS is {wanted}: an existing "
                            f"topic keeps its count, so at most {partitions} processors get work on it "
                            "(docs/scaling.md)")
    return errors, warnings
