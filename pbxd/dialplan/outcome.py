"""How an unanswered call ends, and the Q.850 causes behind ARI's hangup reasons: pure rules."""

from __future__ import annotations

from collections.abc import Sequence

from pbxd.cdr.records import Disposition
from pbxd.dialplan.flow import StepOutcome
from pbxd.vocabulary import HangupReason

# Q.850 cause codes Asterisk puts on a channel hung up with each ARI `reason`.
CAUSE_OF_REASON: dict[HangupReason, int] = {
    HangupReason.NORMAL: 16,
    HangupReason.BUSY: 17,
    HangupReason.CONGESTION: 34,
    HangupReason.NO_ANSWER: 19,
    HangupReason.TIMEOUT: 18,
    HangupReason.REJECTED: 21,
    HangupReason.UNALLOCATED: 1,
    HangupReason.NORMAL_UNSPECIFIED: 31,
    HangupReason.NUMBER_INCOMPLETE: 28,
    HangupReason.CODEC_MISMATCH: 58,
    HangupReason.INTERWORKING: 127,
    HangupReason.FAILURE: 38,
    HangupReason.ANSWERED_ELSEWHERE: 26,
}

USER_BUSY = 17
NO_ANSWER_CAUSES = frozenset({18, 19, 16})  # rang out, or we hung it up at the ring time
ANSWERED_ELSEWHERE = 26


def ring_outcome(leg_causes: Sequence[int | None], timed_out: bool) -> StepOutcome:
    """How a ring step nobody answered ends: no answer, busy, or unavailable.

    `leg_causes` holds each leg's cause; None for a leg that never got a channel (offline
    endpoint, trunk at capacity). Timed out, or a leg that rang out -> no answer; else any
    leg busy -> busy (nobody was free); else every leg failed -> unavailable.
    """
    if timed_out:
        return StepOutcome.NO_ANSWER  # legs were still ringing
    if any(c in NO_ANSWER_CAUSES for c in leg_causes):
        return StepOutcome.NO_ANSWER  # someone rang out
    if USER_BUSY in leg_causes:
        return StepOutcome.BUSY
    return StepOutcome.UNAVAILABLE


def unanswered_outcome(
    leg_causes: Sequence[int | None], timed_out: bool, no_answer_reason: HangupReason
) -> tuple[Disposition, HangupReason]:
    """Disposition of an unanswered call and the reason to hang the caller up with.

    `leg_causes` holds each leg's cause; None for a leg that never got a channel (offline
    endpoint, trunk at capacity). A leg that rang out -> no answer, with the route's
    configured reason; else any leg busy -> busy (nobody was free); else every leg failed
    -> failed (congestion toward the carrier, so it may try another route).
    """
    outcome = ring_outcome(leg_causes, timed_out)
    if outcome is StepOutcome.NO_ANSWER:
        return Disposition.NO_ANSWER, no_answer_reason
    if outcome is StepOutcome.BUSY:
        return Disposition.BUSY, HangupReason.BUSY  # nobody free: the caller hears busy
    return Disposition.FAILED, HangupReason.CONGESTION  # the carrier may try elsewhere
