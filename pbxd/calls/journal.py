"""A call's journal: the typed events of its life, and the CDR built from them.

The session says what happened (`StepEntered`, `LegCreated`, `LegAnswered`, `CallerGone`…);
`Journal.add` applies each event to the call's `CallRecord` and `LegRecord`s (the CDR is
built from the journal, wazo-call-logd style) and hands both the event and the records it
changed to the CDR writer. The events are kept (table `call_events`) so a restart can read
where a call stood in its flow (`replay`), and a call log can be rebuilt from them.

Nothing here calls ARI or reads a clock: the times are in the events.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from pbxd.calls.ids import leg_number, playback_number
from pbxd.cdr.records import (
    CallEventRecord,
    CallRecord,
    Direction,
    Disposition,
    LegRecord,
    PathError,
    PathStep,
    VoicemailLeft,
)
from pbxd.dialplan.flow import StepKind, StepOutcome


class LegEnd(StrEnum):
    """Why a leg ended: read by code (never a sentence) and shown in timelines."""

    HUNG_UP = "hung_up"  # its channel is gone (cause in the event)
    NOT_RUNG = "not_rung"  # its turn never came (answered before, or the call ended)
    TRUNK_FULL = "trunk_full"  # the trunk was at its maximum of outbound legs
    UNREACHABLE = "unreachable"  # Asterisk could not create it (offline endpoint)
    REFUSED = "refused"  # pbxd refused it (a destination outside the trunk's allowlist)
    LOST = "lost"  # closed without Asterisk's confirmation (events lost)
    OFFLINE = "offline"  # skipped: its softphone is not registered
    DND = "dnd"  # skipped: the target is set to do-not-disturb
    ON_CALL = "on_call"  # skipped (`skip_busy`): the target is on another pbxd call


class CallEnd(StrEnum):
    """Why the call ended, when pbxd had to decide it rather than see it."""

    NORMAL = "normal"
    FAILURE = "failure"  # an unexpected error in pbxd: everything hung up
    ASTERISK_LOST = "asterisk_lost"  # its channels were gone when ARI came back


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True)
class JournalEvent:
    """Something that happened to a call, at Asterisk's moment (or ours when we caused it)."""

    kind: ClassVar[str] = ""
    at: datetime

    def data(self) -> dict[str, Any]:
        """The event's fields but `at`, as JSON-ready values (stored with the event)."""
        names = _FIELD_NAMES.get(type(self))
        if names is None:  # asdict() deep-copies: too slow for a dozen events per call
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in fields(self) if f.name != "at")
        out = {}
        for name in names:
            value = getattr(self, name)
            out[name] = str(value) if isinstance(value, StrEnum) else value
        return out


@dataclass(frozen=True, slots=True)
class CallArrived(JournalEvent):
    """An inbound call entered Stasis and was planned."""

    kind: ClassVar[str] = "call_arrived"
    did: str
    caller_number: str
    caller_name: str
    trunk: str | None
    route: str | None
    # A softphone calling out: the number it dialled and the caller ID the carrier gets.
    direction: str = "inbound"
    dialled: str | None = None
    presented: str | None = None
    emergency: bool = False


@dataclass(frozen=True, slots=True)
class CalledOut(JournalEvent):
    """A call through: the mobile keyed a number; the call now goes out as `did`."""

    kind: ClassVar[str] = "called_out"
    did: str
    dialled: str
    presented: str
    emergency: bool = False


@dataclass(frozen=True, slots=True)
class CallRejected(JournalEvent):
    """The number is not ours, reserved or unrouted: hung up without ringing anyone."""

    kind: ClassVar[str] = "call_rejected"
    why: str
    reason: str
    cause: int | None = None  # the Q.850 cause given instead of `reason`'s (52: barred)


@dataclass(frozen=True, slots=True)
class StepEntered(JournalEvent):
    """The flow entered a step."""

    kind: ClassVar[str] = "step_entered"
    step: str
    step_kind: StepKind
    strategy: str | None = None  # a ring step's strategy (the CDR shows it)
    first_leg: int | None = None  # a ring step's legs are `<call id>-<n>` from this n on


@dataclass(frozen=True, slots=True)
class StepLeft(JournalEvent):
    """A step ended with an outcome (the branch taken)."""

    kind: ClassVar[str] = "step_left"
    step: str
    outcome: StepOutcome
    label: str | None = None  # what the call log shows beside it (a goto's route, a cause)


@dataclass(frozen=True, slots=True)
class LegCreated(JournalEvent):
    """A leg's channel was asked of Asterisk (or refused before: see LegEnded)."""

    kind: ClassVar[str] = "leg_created"
    leg: str
    target: str
    destination: str
    step: str


@dataclass(frozen=True, slots=True)
class LegRinging(JournalEvent):
    """The target's phone rings."""

    kind: ClassVar[str] = "leg_rung"
    leg: str


@dataclass(frozen=True, slots=True)
class LegAnswered(JournalEvent):
    """The target answered."""

    kind: ClassVar[str] = "leg_answered"
    leg: str


@dataclass(frozen=True, slots=True)
class LegScreened(JournalEvent):
    """An answered leg was screened (whisper, confirm calls): accepted, or refused and why."""

    kind: ClassVar[str] = "leg_screened"
    leg: str
    verdict: str


@dataclass(frozen=True, slots=True)
class LegEnded(JournalEvent):
    """The leg is over; `cause` is Asterisk's Q.850 cause when it had a channel."""

    kind: ClassVar[str] = "leg_ended"
    leg: str
    why: LegEnd
    cause: int | None = None


@dataclass(frozen=True, slots=True)
class LegCause(JournalEvent):
    """A leg already closed got its cause late (its ChannelDestroyed came after)."""

    kind: ClassVar[str] = "leg_cause"
    leg: str
    cause: int | None


@dataclass(frozen=True, slots=True)
class CallerAnswered(JournalEvent):
    """pbxd answered the caller (for a target, a greeting or voicemail)."""

    kind: ClassVar[str] = "caller_answered"
    by: str | None = None  # the target who answered, None when pbxd itself answered


@dataclass(frozen=True, slots=True)
class Bridged(JournalEvent):
    """The caller and a leg talk in the call's bridge."""

    kind: ClassVar[str] = "bridged"
    bridge: str
    leg: str


@dataclass(frozen=True, slots=True)
class PromptPlayed(JournalEvent):
    """A prompt was played to the caller (`early`: before answering)."""

    kind: ClassVar[str] = "prompt_played"
    step: str
    prompt: str
    early: bool
    completed: bool


@dataclass(frozen=True, slots=True)
class PromptStarted(JournalEvent):
    """A step's prompt to the caller (an announcement, a voicemail greeting) is asked of
    Asterisk under `playback`, journaled before the request: a restart finds it by its id."""

    kind: ClassVar[str] = "prompt_started"
    step: str
    playback: str


@dataclass(frozen=True, slots=True)
class CallAdopted(JournalEvent):
    """A run took the call up after a restart; its playbacks are numbered from
    `playbacks_from` (so the run after it can find a prompt it left playing)."""

    kind: ClassVar[str] = "call_adopted"
    playbacks_from: int


@dataclass(frozen=True, slots=True)
class MenuPrompted(JournalEvent):
    """A menu's prompt is asked of Asterisk (`playback`: its id there; journaled before the
    request), after `failures` wrong or silent tries and with every key pressed so far: where
    a restart takes the menu up."""

    kind: ClassVar[str] = "menu_prompted"
    step: str
    playback: str
    failures: int = 0
    keys: str = ""


@dataclass(frozen=True, slots=True)
class PlanWarned(JournalEvent):
    """The caller was told the plan's minutes run out (once a call, across restarts too)."""

    kind: ClassVar[str] = "plan_warned"
    plan: str
    usage: str  # the minutes running out: forwarded or outbound


@dataclass(frozen=True, slots=True)
class MessageLeft(JournalEvent):
    """A voicemail message was recorded and kept (`message_id`: its id in the voicemail store)."""

    kind: ClassVar[str] = "voicemail_left"
    step: str
    mailbox: str
    message_id: str
    seconds: int


@dataclass(frozen=True, slots=True)
class CallerGone(JournalEvent):
    """The caller's channel left (its cause may come later, in a second CallerGone)."""

    kind: ClassVar[str] = "caller_gone"
    cause: int | None = None


@dataclass(frozen=True, slots=True)
class CallEnded(JournalEvent):
    """Every channel of the call is gone: the CDR is complete."""

    kind: ClassVar[str] = "call_ended"
    cause: int | None = None
    why: CallEnd = CallEnd.NORMAL


EVENT_TYPES: dict[str, type[JournalEvent]] = {
    cls.kind: cls
    for cls in (
        CallArrived,
        CallRejected,
        CalledOut,
        StepEntered,
        StepLeft,
        LegCreated,
        LegRinging,
        LegAnswered,
        LegScreened,
        LegEnded,
        LegCause,
        CallerAnswered,
        Bridged,
        PromptPlayed,
        PromptStarted,
        CallAdopted,
        MenuPrompted,
        PlanWarned,
        MessageLeft,
        CallerGone,
        CallEnded,
    )
}

_ENUM_FIELDS: dict[str, type[StrEnum]] = {
    "step_kind": StepKind,
    "outcome": StepOutcome,
    "why": LegEnd,
}


def event_of_record(record: CallEventRecord) -> JournalEvent | None:
    """A stored event back as its dataclass; None for a kind or shape this version lacks."""
    return event_from_data(record.kind, record.at, record.data)


def event_from_data(kind: str, at: datetime, data: Mapping[str, Any]) -> JournalEvent | None:
    """An event from its kind, time and fields; None for a kind or shape this version lacks."""
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        return None
    values: dict[str, Any] = {}
    try:
        for f in fields(cls):
            if f.name == "at" or f.name not in data:
                continue
            value = data[f.name]
            enum = CallEnd if (cls is CallEnded and f.name == "why") else _ENUM_FIELDS.get(f.name)
            values[f.name] = enum(value) if enum is not None and value is not None else value
        return cls(at=at, **values)
    except (TypeError, ValueError):
        return None


# Disposition of an unanswered call by the outcome of its last ring (or schedule) step.
_DISPOSITION_OF_OUTCOME = {
    StepOutcome.CLOSED: Disposition.CLOSED,
    StepOutcome.NO_ANSWER: Disposition.NO_ANSWER,
    StepOutcome.BUSY: Disposition.BUSY,
    StepOutcome.UNAVAILABLE: Disposition.FAILED,
}


class JournalSink(Protocol):
    """Where a journal sends its records and events (the CDR store; a list in tests)."""

    def record_call(self, record: CallRecord) -> object:
        """Queue the call's current state for writing."""
        ...

    def record_leg(self, record: LegRecord) -> object:
        """Queue a leg's current state for writing."""
        ...


@dataclass(slots=True)
class Journal:
    """The events of one call and the CDR records they make."""

    record: CallRecord
    sink: JournalSink
    legs: dict[str, LegRecord] = field(default_factory=dict)
    # The events themselves go to the sink (table `call_events`), not kept here: a call
    # holds only what its records say, however long it lasts.
    seq: int = 0  # events numbered from 1; an adopted call goes on after the stored ones
    path: list[str] = field(default_factory=list)  # steps entered, in order
    # The step entered last and its kind: a StepLeft is always of the step entered last.
    _step: tuple[str, StepKind] | None = None
    _ended: bool = False  # CallEnded applied

    @property
    def call_id(self) -> str:
        """The call the journal belongs to."""
        return self.record.call_id

    def add(self, event: JournalEvent) -> None:
        """Apply `event` to the records, then queue the event and what it changed."""
        self.seq += 1
        changed_call, changed_leg = self._apply(event)
        store = self.sink
        record_event = getattr(store, "record_event", None)
        if record_event is not None:  # a store that keeps journals (the CDR store does)
            record_event(
                CallEventRecord(self.call_id, self.seq, event.at, event.kind, event.data())
            )
        if changed_call:
            store.record_call(self.record)
        if changed_leg is not None:
            store.record_leg(changed_leg)

    def restore(self, events: Iterable[JournalEvent], start_seq: int) -> None:
        """Replay stored events into the records without writing anything again."""
        for event in events:
            self._apply(event)
        self.seq = max(self.seq, start_seq)

    def take_up(self, stored: Iterable[JournalEvent]) -> None:
        """An adopted call's stored events: the steps they entered (so a step left after the
        restart reaches the call log), not applied again (its stored records have them)."""
        for event in stored:
            if isinstance(event, StepEntered):
                self.path.append(event.step)
                self._step = (event.step, event.step_kind)

    def _apply(self, event: JournalEvent) -> tuple[bool, LegRecord | None]:
        """Update the records; (call record changed, leg record changed)."""
        rec = self.record
        match event:
            case CallArrived():
                rec.did, rec.trunk = event.did, event.trunk
                rec.caller_number = event.caller_number
                rec.caller_name = event.caller_name or None
                rec.route = event.route
                rec.direction = (
                    Direction.OUTBOUND if event.direction == "outbound" else Direction.INBOUND
                )
                rec.dialled, rec.presented = event.dialled, event.presented
                rec.emergency = event.emergency
                return True, None
            case CalledOut():
                rec.did, rec.direction = event.did, Direction.OUTBOUND
                rec.dialled, rec.presented = event.dialled, event.presented
                rec.emergency = event.emergency
                return True, None
            case CallRejected():
                rec.disposition = Disposition.REJECTED
                rec.hangup_cause = event.cause if event.cause is not None else rec.hangup_cause
                return True, None
            case StepEntered():
                self.path.append(event.step)
                self._step = (event.step, event.step_kind)
                if event.strategy is not None and rec.strategy is None:
                    rec.strategy = event.strategy
                    return True, None
                return False, None
            case StepLeft():
                step = self._step
                kind = step[1] if step is not None and step[0] == event.step else None
                if kind is not None:
                    with contextlib.suppress(PathError):  # an outcome the call log has no word for
                        rec.add_step(PathStep(kind, event.outcome, event.label))
                if rec.answered_at is None and event.outcome in _DISPOSITION_OF_OUTCOME:
                    rec.disposition = _DISPOSITION_OF_OUTCOME[event.outcome]
                return True, None
            case MessageLeft():
                rec.voicemail = VoicemailLeft(event.message_id, event.seconds)
                rec.disposition = Disposition.VOICEMAIL
                return True, None
            case LegCreated():
                leg = LegRecord(
                    leg_id=event.leg,
                    call_id=self.call_id,
                    target=event.target,
                    destination=event.destination,
                    started_at=event.at,
                )
                self.legs[event.leg] = leg
                return False, leg
            case LegAnswered():
                known = self.legs.get(event.leg)
                if known is not None:
                    known.answered_at = event.at
                return False, known
            case LegEnded():
                known = self.legs.get(event.leg)
                if known is not None:
                    known.ended_at = event.at
                    known.hangup_cause = event.cause
                return False, known
            case LegCause():
                known = self.legs.get(event.leg)
                if known is not None:
                    known.hangup_cause = event.cause
                return False, known
            case CallerAnswered():
                if rec.answered_at is None:  # billed from the first answer (a greeting's)
                    rec.answered_at = event.at
                rec.answered_by = event.by
                if event.by is not None:
                    rec.disposition = None  # a target answered: not a failed ring any more
                return True, None
            case CallerGone():
                if rec.ended_at is None:
                    rec.ended_at = event.at
                    if rec.answered_at is None and rec.disposition is None:
                        rec.disposition = Disposition.ABANDONED
                if event.cause is not None:
                    rec.hangup_cause = event.cause
                return True, None
            case CallEnded():
                self._ended = True
                if rec.ended_at is None:
                    rec.ended_at = event.at
                if rec.hangup_cause is None:
                    rec.hangup_cause = event.cause
                if rec.answered_by is not None and rec.answered_at is not None:
                    rec.disposition = Disposition.ANSWERED
                elif event.why is CallEnd.ASTERISK_LOST and rec.answered_at is None:
                    rec.disposition = Disposition.FAILED  # nobody hung up: Asterisk went away
                elif rec.disposition is None:
                    answered = rec.answered_at is not None
                    rec.disposition = Disposition.ANSWERED if answered else Disposition.FAILED
                return True, None
            case _:
                return False, None

    def ended(self) -> bool:
        """True once the call's end is journaled."""
        return self._ended


@dataclass(frozen=True, slots=True)
class LegPosition:
    """What the journal says of one leg."""

    leg: str
    target: str
    step: str
    rung: bool
    answered: bool
    ended: bool
    cause: int | None


@dataclass(frozen=True, slots=True)
class Position:
    """Where a call stood in its flow when its journal stops (what a restart resumes)."""

    route: str | None
    step: str | None  # the step entered last and not left
    strategy: str | None
    step_entered: datetime | None
    first_leg: int
    legs: tuple[LegPosition, ...]
    answered_by: str | None
    bridged_leg: str | None
    ended: bool
    last_seen: datetime | None
    legs_made: int  # leg numbers already used (the next leg is legs_made + 1)


def replay(events: Iterable[JournalEvent]) -> Position:
    """Read where a call stood from its journal (pure: no record, no I/O)."""
    route: str | None = None
    step: str | None = None
    strategy: str | None = None
    entered: datetime | None = None
    first_leg = 1
    legs: dict[str, dict[str, Any]] = {}
    answered_by: str | None = None
    bridged: str | None = None
    ended = False
    last: datetime | None = None
    for event in events:
        last = event.at if last is None else max(last, event.at)
        match event:
            case CallArrived():
                route = event.route
            case StepEntered():
                step, strategy, entered = event.step, event.strategy, event.at
                first_leg = event.first_leg or first_leg
            case StepLeft():
                if step == event.step:
                    step = None
            case LegCreated():
                legs[event.leg] = {
                    "target": event.target,
                    "step": event.step,
                    "rung": False,
                    "answered": False,
                    "ended": False,
                    "cause": None,
                }
            case LegRinging() if event.leg in legs:
                legs[event.leg]["rung"] = True
            case LegAnswered() if event.leg in legs:
                legs[event.leg]["answered"] = True
            case LegEnded() if event.leg in legs:
                legs[event.leg]["ended"] = True
                legs[event.leg]["cause"] = event.cause
            case CallerAnswered():
                answered_by = event.by
            case Bridged():
                bridged = event.leg
            case CallEnded():
                ended = True
            case _:
                pass
    positions = tuple(LegPosition(leg, **fields_) for leg, fields_ in legs.items())
    numbers = [n for n in (leg_number(p.leg) for p in positions) if n is not None]
    return Position(
        route=route,
        step=step,
        strategy=strategy,
        step_entered=entered,
        first_leg=first_leg,
        legs=positions,
        answered_by=answered_by,
        bridged_leg=bridged,
        ended=ended,
        last_seen=last,
        legs_made=max(numbers, default=0),
    )


def unrecorded_playbacks_from(events: Iterable[JournalEvent], call_id: str) -> int:
    """The first playback number the last run may have used without its journal keeping it.

    Prompts are journaled before Asterisk is asked to play them, but a crash loses what the
    CDR writer had not committed: the last run's prompts after the last one kept may still
    play. Its numbers follow the last kept one (or the run's first, `CallAdopted`).
    """
    base = 0
    numbers: list[int] = []
    for event in events:
        if isinstance(event, CallAdopted):
            base, numbers = event.playbacks_from, []
        elif isinstance(event, MenuPrompted | PromptStarted):
            number = playback_number(call_id, event.playback)
            if number is not None:
                numbers.append(number)
    return max(numbers, default=base) + 1
