"""Call-detail records as plain data: what the call controller writes and reports read."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Disposition(StrEnum):
    """How a call ended, from the caller's point of view (a fixed set reports rely on)."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    ABANDONED = "abandoned"
    REJECTED = "rejected"


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    """Whole seconds, half a second up (Asterisk's `initiatedseconds`), never negative.

    Integer milliseconds, not round(): banker's rounding would bill 2.5 s as 2 and 3.5 s as 4.
    """
    if start is None or end is None:
        return None
    millis = (end - start) // timedelta(milliseconds=1)
    return max(0, (millis + 500) // 1000)


@dataclass(slots=True)
class LegRecord:
    """One outbound attempt to one target; `leg_id` is the Asterisk channel id."""

    leg_id: str
    call_id: str
    target: str
    destination: str
    started_at: datetime
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    hangup_cause: int | None = None

    def snapshot(self) -> LegRecord:
        """A copy the CDR writer can keep while the controller goes on changing this one."""
        return dataclasses.replace(self)


@dataclass(slots=True)
class CallRecord:
    """One inbound call to a virtual number; `call_id` is the inbound channel's id.

    Times are aware UTC datetimes. `ended_at is None` means the call is still open.
    """

    call_id: str
    did: str
    started_at: datetime
    caller_number: str | None = None
    caller_name: str | None = None
    trunk: str | None = None
    route: str | None = None
    strategy: str | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    disposition: Disposition | None = None
    answered_by: str | None = None
    hangup_cause: int | None = None

    @property
    def duration(self) -> int | None:
        """Whole seconds from arrival to end."""
        return _seconds(self.started_at, self.ended_at)

    @property
    def billsec(self) -> int | None:
        """Whole seconds from answer to end (0 for an unanswered, ended call)."""
        if self.ended_at is not None and self.answered_at is None:
            return 0
        return _seconds(self.answered_at, self.ended_at)

    def snapshot(self) -> CallRecord:
        """A copy the CDR writer can keep while the controller goes on changing this one."""
        return dataclasses.replace(self)


@dataclass(frozen=True, slots=True)
class CallEventRecord:
    """One event of a call's journal as stored (`pbxd.calls.journal` gives it meaning)."""

    call_id: str
    seq: int  # its order within the call, from 1
    at: datetime
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CallLogEntry:
    """A call with its legs, ordered by leg start: one line of a number's call log."""

    call: CallRecord
    legs: list[LegRecord] = field(default_factory=list)
