"""Call-detail records as plain data: what the call controller writes and reports read."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import quote, unquote


class Disposition(StrEnum):
    """How a call ended, from the caller's point of view (a fixed set reports rely on)."""

    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    ABANDONED = "abandoned"
    REJECTED = "rejected"
    # The caller left a voicemail message (the call has a `voicemail`).
    VOICEMAIL = "voicemail"
    # Outside opening hours, ended without reaching anyone or leaving a message.
    CLOSED = "closed"


class Direction(StrEnum):
    """Which way a call goes: to one of our numbers, or out from a softphone."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class StepKind(StrEnum):
    """The kinds of call-flow step (`pbxd.dialplan.flow` builds flows of them)."""

    SCHEDULE = "schedule"
    PLAY = "play"
    RING = "ring"
    VOICEMAIL = "voicemail"
    GOTO = "goto"
    HANGUP = "hangup"
    MENU = "menu"
    CALL_THROUGH = "call_through"  # a registered mobile keys a PIN and a number to call out


class StepOutcome(StrEnum):
    """How a step ended: the label of the branch taken, and the word the call log shows.

    Which outcomes each kind may have is `OUTCOMES_OF`.
    """

    OPEN = "open"
    CLOSED = "closed"
    PLAYED = "played"
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    UNAVAILABLE = "unavailable"  # every target offline or refused
    LEFT = "left"  # a voicemail message was kept
    TOO_SHORT = "too_short"  # a message under the box's minimum: dropped, not kept as noise
    NO_MESSAGE = "no_message"  # the caller hung up before saying anything
    ABANDONED = "abandoned"  # the caller hung up during the step
    JUMPED = "jumped"
    HUNG_UP = "hung_up"
    CHOSEN = "chosen"  # a menu key led somewhere
    TIMEOUT = "timeout"  # a menu waited in vain
    INVALID = "invalid"  # a menu got wrong keys until it gave up
    REFUSED = "refused"  # a call through: unknown mobile, wrong PIN, forbidden destination


_WITH_CALLER = frozenset({StepOutcome.ABANDONED})
OUTCOMES_OF: dict[StepKind, frozenset[StepOutcome]] = {
    StepKind.SCHEDULE: frozenset({StepOutcome.OPEN, StepOutcome.CLOSED}),
    StepKind.PLAY: frozenset({StepOutcome.PLAYED}) | _WITH_CALLER,
    StepKind.MENU: frozenset({StepOutcome.CHOSEN, StepOutcome.TIMEOUT, StepOutcome.INVALID})
    | _WITH_CALLER,
    StepKind.RING: frozenset(
        {
            StepOutcome.ANSWERED,
            StepOutcome.NO_ANSWER,
            StepOutcome.BUSY,
            StepOutcome.UNAVAILABLE,
        }
    )
    | _WITH_CALLER,
    StepKind.VOICEMAIL: frozenset({StepOutcome.LEFT, StepOutcome.NO_MESSAGE, StepOutcome.TOO_SHORT})
    | _WITH_CALLER,
    StepKind.GOTO: frozenset({StepOutcome.JUMPED}),
    StepKind.HANGUP: frozenset({StepOutcome.HUNG_UP}),
    StepKind.CALL_THROUGH: frozenset({StepOutcome.CHOSEN, StepOutcome.REFUSED, StepOutcome.TIMEOUT})
    | _WITH_CALLER,
}


class PathError(ValueError):
    """A path step or stored path that does not read as kind:outcome[:label]."""


@dataclass(frozen=True, slots=True)
class PathStep:
    """One step a call went through and how it ended: `ring:no_answer`, `goto:jumped:support`.

    `label` is optional context an admin recognises (a goto's route, a menu's key, a prompt).
    """

    kind: StepKind
    outcome: StepOutcome
    label: str | None = None

    def __post_init__(self) -> None:
        """Refuse an outcome the kind cannot have (a bug in the caller, caught at once)."""
        if self.outcome not in OUTCOMES_OF[self.kind]:
            raise PathError(f"a {self.kind} step cannot end {self.outcome}")

    def token(self) -> str:
        """`kind:outcome` or `kind:outcome:label` (label percent-encoded): the stored form."""
        base = f"{self.kind}:{self.outcome}"
        return base if self.label is None else f"{base}:{quote(self.label, safe='')}"

    @classmethod
    def parse(cls, token: str) -> PathStep:
        """The step a `token()` wrote; PathError names what is wrong."""
        kind, _, rest = token.partition(":")
        outcome, sep, label = rest.partition(":")
        try:
            step_kind, step_outcome = StepKind(kind), StepOutcome(outcome)
        except ValueError:
            raise PathError(f"unknown call path step {token!r}") from None
        return cls(step_kind, step_outcome, unquote(label) if sep else None)

    def words(self) -> tuple[str, ...]:
        """How a person reads this step: `("ring", "no answer")`, `("closed",)`."""
        return _words(self)


def _words(step: PathStep) -> tuple[str, ...]:
    """The readable form of one step (see `format_path`)."""
    outcome = step.outcome.replace("_", " ")
    if step.outcome is StepOutcome.ABANDONED:
        return (_kind_word(step), "caller hung up")
    match step.kind:
        case StepKind.SCHEDULE:
            # Open is the everyday case: only a closed line is worth reading in a call log.
            return () if step.outcome is StepOutcome.OPEN else (outcome,)
        case StepKind.PLAY:
            return ("greeting",)
        case StepKind.RING:
            return ("ring", outcome)
        case StepKind.VOICEMAIL:
            left = step.outcome is StepOutcome.LEFT
            return ("voicemail",) if left else (f"voicemail ({outcome})",)
        case StepKind.GOTO:
            return (f"goto {step.label}" if step.label else "goto",)
        case StepKind.MENU:
            # The label is the keys pressed, then `>` and the branch chosen: `2>support`.
            keys, _, branch = (step.label or "").partition(">")
            head = f"menu: {keys}" if keys else "menu"
            chosen = step.outcome is StepOutcome.CHOSEN and branch
            return (head, branch) if chosen else (head, outcome)
        case StepKind.CALL_THROUGH:
            return ("call through", outcome)
        case StepKind.HANGUP:
            return (f"hangup ({step.label})" if step.label else "hangup",)


def _kind_word(step: PathStep) -> str:
    return "greeting" if step.kind is StepKind.PLAY else str(step.kind)


CallPath = tuple[PathStep, ...]
"""The steps of one call, in order."""

PATH_ARROW = " \N{RIGHTWARDS ARROW} "


def format_path(path: CallPath) -> str:
    """`closed → voicemail`, `greeting → ring → no answer → voicemail`; `` for no path."""
    return PATH_ARROW.join(word for step in path for word in step.words())


def path_to_text(path: CallPath) -> str | None:
    """The stored form: tokens separated by spaces (None for an empty path)."""
    return " ".join(step.token() for step in path) if path else None


def path_from_text(text: str | None) -> CallPath:
    """The typed path from its stored form; PathError for a token it cannot read."""
    if not text:
        return ()
    return tuple(PathStep.parse(token) for token in text.split())


@dataclass(frozen=True, slots=True)
class VoicemailLeft:
    """The message a caller left: its id in the voicemail store and its length."""

    message_id: str
    duration: int  # whole seconds of recording

    def __post_init__(self) -> None:
        """A message id is a non-empty token; a duration is never negative."""
        if not self.message_id or self.duration < 0:
            raise ValueError("a voicemail needs a message id and a duration >= 0")


def disposition_after_voicemail(before: Disposition, left: VoicemailLeft | None) -> Disposition:
    """The call's disposition once its voicemail step is over.

    A message makes it `voicemail` (something to listen to). A caller who reached the box
    and left nothing (or too short a message) is still a missed call: it keeps why nobody
    took it (`no_answer`, `busy`, `closed`, ...), and its path says `voicemail (no message)`.
    """
    return Disposition.VOICEMAIL if left is not None else before


def billable_seconds(start: datetime, end: datetime) -> int:
    """Whole billable seconds from `start` to `end` (as a CDR's billsec counts them)."""
    return _seconds(start, end) or 0


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
    path: CallPath = ()
    voicemail: VoicemailLeft | None = None
    # A call going out: `did` is the virtual number presented, `caller_number` who dialled.
    direction: Direction = Direction.INBOUND
    dialled: str | None = None  # the number dialled (E.164, or an emergency short number)
    presented: str | None = None  # the caller ID the carrier got
    emergency: bool = False  # an emergency call: never counted against a plan
    # The Asterisk that carried the call (its system name, else its entity id); None before 0006.
    server: str | None = None

    def add_step(self, step: PathStep) -> None:
        """Append a step to the call's path (a new tuple: earlier snapshots keep theirs)."""
        self.path = (*self.path, step)

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
