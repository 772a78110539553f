"""The words a call is run with, shared by the configuration, the planner and the call core.

They used to live with the YAML file models (`pbxd.config.files`, which re-exports them);
the runtime needs them without the configuration's parsing layer.
"""

from __future__ import annotations

from enum import StrEnum


class RingStrategy(StrEnum):
    """How a ring step's targets are rung (each one a class in `pbxd.calls.strategies`)."""

    RINGALL = "ringall"
    HUNT = "hunt"
    STAGGERED = "staggered"  # follow-me: each target joins at its `start_after`
    MEMORYHUNT = "memoryhunt"  # the first, then the first two, then the first three...
    ROUNDROBIN = "roundrobin"  # a hunt starting one further each call (shared memory)
    LONGEST_IDLE = "longest_idle"  # a hunt, the target idle longest first
    FEWEST_CALLS = "fewest_calls"  # a hunt, the target with the fewest answered calls today first
    RANDOM = "random"  # a hunt in a random order
    WEIGHTED = "weighted"  # a hunt in a random order, heavier targets likelier first

    @property
    def one_at_a_time(self) -> bool:
        """A hunt of some order: one target rings at a time, the next when it ended."""
        return self not in (
            RingStrategy.RINGALL,
            RingStrategy.STAGGERED,
            RingStrategy.MEMORYHUNT,
        )


class HangupReason(StrEnum):
    """Reasons ARI accepts on DELETE /channels/{id} (Asterisk 22's allowable values)."""

    NORMAL = "normal"
    BUSY = "busy"
    CONGESTION = "congestion"
    NO_ANSWER = "no_answer"
    TIMEOUT = "timeout"
    REJECTED = "rejected"
    UNALLOCATED = "unallocated"
    NORMAL_UNSPECIFIED = "normal_unspecified"
    NUMBER_INCOMPLETE = "number_incomplete"
    CODEC_MISMATCH = "codec_mismatch"
    INTERWORKING = "interworking"
    FAILURE = "failure"
    ANSWERED_ELSEWHERE = "answered_elsewhere"
