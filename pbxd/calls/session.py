"""One session per call: the only code that asks Asterisk anything about that call.

A session owns the call's Asterisk side: the caller's channel, the legs it creates, the
bridge, the timers, teardown and resync after a reconnection. It runs the call's flow one
step at a time: each step's handler (`pbxd.calls.steps`) decides, and asks the session to
act; what happens is told to the call's journal (`pbxd.calls.journal`), which builds the CDR.

Everything that happens to a call (ARI events, its timers, a resync) goes through one queue
and is handled in order by the session's own task, so no two handlers of one call ever
interleave. The daemon only routes events to the right session.

CDR times are Asterisk's own event timestamps wherever an event marks the moment (arrival,
answer of a leg, hangups), so a busy daemon records when things happened, not when it got
to them; the moments pbxd itself causes (leg created, caller answered) use the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

import structlog

from pbxd.ari import (
    AriClient,
    AriConflict,
    AriError,
    AriNotFound,
    AriUnprocessable,
    ChannelDestroyed,
    ChannelHangupRequest,
    ChannelStateChange,
    Event,
    StasisEnd,
    StasisStart,
)
from pbxd.calls import ids
from pbxd.calls.journal import (
    Bridged,
    CallArrived,
    CallEnd,
    CallEnded,
    CallerAnswered,
    CallerGone,
    CallRejected,
    Journal,
    LegAnswered,
    LegCause,
    LegCreated,
    LegEnd,
    LegEnded,
    LegRinging,
    PlanWarned,
    StepEntered,
    StepLeft,
)
from pbxd.calls.mailbox import Mailbox
from pbxd.calls.roster import Roster
from pbxd.calls.states import (
    CALL_TRANSITIONS,
    CALLER_TRANSITIONS,
    LEG_TRANSITIONS,
    CallerState,
    CallState,
    LegState,
    check,
)
from pbxd.calls.strategies import Slot
from pbxd.cdr.records import CallRecord
from pbxd.clock import Clock
from pbxd.config.destinations import BARRED_CAUSE, MAX_DURATION_CAUSE
from pbxd.dialplan import Flow, LegPlan, Reject, RingStep, StepOutcome, limits
from pbxd.dialplan.limits import kind_of as limits_kind
from pbxd.dialplan.outcome import ANSWERED_ELSEWHERE, CAUSE_OF_REASON
from pbxd.dialplan.tollfraud import leg_refusal
from pbxd.vocabulary import HangupReason
from pbxd.voicemail.messages import wav_seconds

if TYPE_CHECKING:
    from pbxd.calls.bridges import BridgePool
    from pbxd.calls.limits import PlanGuard
    from pbxd.calls.steps.base import StepHandler
    from pbxd.calls.steps.voicemail import MessageDesk, NewMessage

log = structlog.get_logger("pbxd.calls")

# After we hang a channel up, Asterisk confirms within milliseconds; past this, stop waiting.
END_GRACE_SECONDS = 5.0
# Asterisk answers a REST 404 a few ms before its ChannelDestroyed (with the cause) reaches us.
VANISH_GRACE_SECONDS = 0.5
# Q.850 38, network out of order: the cause of a call Asterisk lost while ARI was down.
LOST_CAUSE = CAUSE_OF_REASON[HangupReason.FAILURE]
NORMAL_CLEARING = CAUSE_OF_REASON[HangupReason.NORMAL]
# A playback in these states still plays (or will): its PlaybackFinished is to come.
LIVE_PLAYBACK_STATES = frozenset({"queued", "playing", "continuing"})
# Set on the caller's channel once warned that the plan's minutes run out (value: the plan).
PLAN_WARNED_VARIABLE = "PBXD_PLAN_WARNED"
# Adopted: playback ids asked for after the last one found playing before giving up. pbxd
# starts a caller's prompt only once the one before is over or stopped, and journals it
# before asking: more unjournaled in a row means keys faster than a hand presses them.
UNRECORDED_MISSES = 4
# Adopted: how long a run waits for the journal of its adoption to be in the database
# before it plays anything (so the run after it finds its prompts), at most.
ADOPTION_WRITE_SECONDS = 2.0
# A flow whose steps jump this often without waiting is broken (`pbxd check` refuses loops).
MAX_STEPS_WITHOUT_WAITING = 32
_SKIP_NOTES = {
    LegEnd.OFFLINE: "its softphone is offline",
    LegEnd.DND: "do-not-disturb",
    LegEnd.ON_CALL: "already on a call",
}


class ChannelDirectory(Protocol):
    """The daemon's map from channel id to session, and its trunk capacity."""

    def claim(self, channel_id: str, session: CallSession) -> None:
        """Route this channel's events to `session`."""
        ...

    def release(self, channel_id: str) -> None:
        """Stop routing this channel's events."""
        ...

    def take_trunk_slot(self, trunk: str) -> bool:
        """Reserve one outbound leg on `trunk`; False when it is at its maximum."""
        ...

    def give_trunk_slot(self, trunk: str) -> None:
        """Free a slot taken with `take_trunk_slot` or `hold_trunk_slot`."""
        ...

    def hold_trunk_slot(self, trunk: str) -> None:
        """Count a leg that exists already (adopted), even above the maximum."""
        ...


@dataclass(slots=True)
class Leg:
    """One outbound attempt to one target, made by a ring step (`step`)."""

    plan: LegPlan
    channel_id: str
    step: str
    state: LegState = LegState.WAITING
    cause: int | None = None
    end: LegEnd | None = None  # why it ended, once ENDED
    turn: int = 0  # legs of one turn start together (see `pbxd.calls.strategies.Slot`)

    @property
    def live(self) -> bool:
        """True while the leg has (or is getting) a channel on Asterisk."""
        return self.state.live

    @property
    def holds_trunk_slot(self) -> bool:
        """A live leg through a trunk counts against its maximum of outbound legs."""
        return self.plan.trunk is not None and self.live


@dataclass(slots=True)
class Caller:
    """The inbound channel."""

    channel_id: str
    state: CallerState = CallerState.PRESENT
    cause: int | None = None
    hung_up_with: HangupReason | None = None  # how we hung it up, if we did
    requested_cause: int | None = None  # the Q.850 cause our hangup request gives it
    # Asterisk 22 watches an inbound channel past its StasisEnd (and sends its
    # ChannelDestroyed) only once it originated a leg: then, and only then, wait for it.
    destroyed_follows: bool = False
    # The dialplan's Ringing() before Stasis, with nothing sent to the caller since: the
    # first ring step needs no ring request of its own.
    ringing: bool = False


@dataclass(frozen=True, slots=True)
class Timer:
    """A timer firing, delivered through the call's queue like an event."""

    name: str
    key: str = ""


@dataclass(frozen=True, slots=True)
class Resync:
    """Check every channel still exists (after the event WebSocket reconnected).

    `lost_at`: when the connection to Asterisk dropped, if it did; a call whose every
    channel is gone ended then (Asterisk went away with it), not when we found out.
    """

    lost_at: datetime | None = None


QueueItem = Event | Timer | Resync


@dataclass(slots=True)
class TimelineEntry:
    """One line of a call's readable history."""

    at: datetime
    text: str


def caller_id_variables(leg: LegPlan) -> dict[str, str]:
    """Channel variables presenting the route's caller ID on an outbound leg.

    chan_pjsip builds the INVITE's From (and P-Asserted-Identity) from the channel's
    connected line, not its CALLERID; `i` sets it without an update frame to a channel
    not yet called. CALLERID is set too, so the leg's own snapshot shows the same. A
    presentation other than allowed (a withheld caller) goes in CONNECTEDLINE(pres): chan_pjsip
    then leaves From alone and sends PAI (with `Privacy: id`) only to a trusted endpoint.
    """
    variables = {
        "CALLERID(num)": leg.caller_id_number,
        "CONNECTEDLINE(num,i)": leg.caller_id_number,
    }
    if leg.caller_id_name:
        variables["CALLERID(name)"] = leg.caller_id_name
        variables["CONNECTEDLINE(name,i)"] = leg.caller_id_name
    if not leg.caller_id_presentation.allowed:
        variables["CONNECTEDLINE(pres,i)"] = str(leg.caller_id_presentation)
    return variables


@dataclass(eq=False, slots=True)
class CallSession:
    """One call's Asterisk side, and the runner of its flow."""

    call_id: str
    flow: Flow | Reject | None
    journal: Journal
    ari: AriClient
    clock: Clock
    directory: ChannelDirectory
    state: CallState = CallState.STARTING
    legs: list[Leg] = field(default_factory=list)
    bridge_id: str | None = None
    winner: Leg | None = None
    # The readable history, flat: moment, line, moment, line… (`timeline` pairs them up).
    _notes: list[datetime | str] = field(default_factory=list, repr=False)
    caller: Caller = field(init=False)
    queue: Mailbox[QueueItem] = field(default_factory=Mailbox, repr=False)
    handler: StepHandler[Any] | None = field(default=None, repr=False)
    step_name: str | None = None
    adopted: bool = False
    connection: int = 0  # which event-stream connection the call started on
    legs_made: int = 0  # leg ids used so far (`<call id>-<n>`, n from 1)
    playbacks_made: int = 0
    # Adopted: the first playback number the last run may have started unjournaled.
    unrecorded_from: int | None = None
    desk: MessageDesk | None = None  # the voicemail back office (None: messages stay on Asterisk)
    roster: Roster = field(default_factory=Roster)  # presence, do-not-disturb, strategy memory
    limits: PlanGuard | None = None  # the plans of the numbers calls use (None: not enforced)
    bridges: BridgePool | None = None  # idle bridges to take (None: a bridge of its own)
    plan_warned: bool = False  # the caller heard that the plan's minutes run out
    on_finished: Callable[[CallSession], Awaitable[None] | None] | None = None
    _timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict, repr=False)
    # Channels Asterisk said are gone, waiting for their ChannelDestroyed (never cancelled early).
    _vanish_checks: dict[str, asyncio.TimerHandle] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.caller = Caller(self.call_id)

    # ------------------------------------------------------------------ public

    @property
    def record(self) -> CallRecord:
        """The call's CDR as its journal built it so far."""
        return self.journal.record

    @property
    def did(self) -> str:
        """The virtual number called."""
        return self.record.did

    def deliver(self, item: QueueItem) -> None:
        """Hand an event (or timer, or resync) to this call; never blocks."""
        self.queue.put(item)

    def describe(self) -> str:
        """The call's state as a person reads it (SIGUSR1 logs this for every call)."""
        record = self.record
        step = f", step {self.step_name}" if self.step_name and self.step_name != "ring" else ""
        lines = [
            f"call {self.call_id} to {self.did} from {record.caller_number}: {self.state}"
            + (f", route {record.route} ({record.strategy})" if record.route else "")
            + step
        ]
        for leg in self.legs:
            cause = f" cause {leg.cause}" if leg.cause is not None else ""
            why = f" ({leg.end})" if leg.end not in (None, LegEnd.HUNG_UP) else ""
            lines.append(
                f"  leg {leg.plan.target} [{leg.plan.dial_string}]: {leg.state}{cause}{why}"
            )
        if self.bridge_id:
            lines.append(f"  bridge {self.bridge_id}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()

    async def run(self) -> None:
        """The call's task: start (or resume) the flow, then handle queued items until the end.

        Run it as a task of its own (`asyncio.create_task`): the call's log context is bound
        in the task's context, which ends with it (no reset, no tokens kept per call).
        """
        structlog.contextvars.bind_contextvars(call_id=self.call_id, did=self.did)
        try:
            if self.adopted:
                await self._resume()
            else:
                await self._start()
            queue = self.queue
            while self.state is not CallState.ENDED:
                while not queue:
                    await queue.wait()
                # Handed on, not named: a call waiting for its next event holds no old one.
                await self._handle(queue.pop())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("call session failed; cleaning the call up")
            await self._abort()
        finally:
            # A step that never ended (bridging failed, an abort) would keep its handler,
            # which points back here: a cycle only the collector could free.
            self.handler = None
            self.cancel_timers()
            for handle in self._vanish_checks.values():
                handle.cancel()
            self._vanish_checks.clear()
            for channel in [self.caller.channel_id, *(leg.channel_id for leg in self.legs)]:
                self.directory.release(channel)
            for leg in self.legs:
                if leg.holds_trunk_slot and leg.plan.trunk is not None:
                    self.directory.give_trunk_slot(leg.plan.trunk)
            if self.on_finished is not None:
                result = self.on_finished(self)
                if result is not None:
                    await result

    # ------------------------------------------------------------------ states

    def to(self, state: CallState) -> None:
        """Move the call to `state` (only as CALL_TRANSITIONS allows)."""
        if state is self.state and state in (CallState.RINGING, CallState.PLAYING, CallState.MENU):
            return  # one ring or play step after another
        check(CALL_TRANSITIONS, self.state, state)
        self.state = state

    def _caller_to(self, state: CallerState) -> None:
        check(CALLER_TRANSITIONS, self.caller.state, state)
        self.caller.state = state

    def _caller_destroyed(self) -> None:
        """Asterisk freed the caller's channel (or we stop waiting for it)."""
        if self.caller.state is not CallerState.DESTROYED:
            self._caller_to(CallerState.DESTROYED)

    def leg_to(self, leg: Leg, state: LegState, end: LegEnd | None = None) -> None:
        """Move a leg to `state`; leaving the live states frees its trunk slot."""
        check(LEG_TRANSITIONS, leg.state, state)
        held = leg.holds_trunk_slot
        leg.state = state
        if state is LegState.ENDED:
            leg.end = end or LegEnd.HUNG_UP
        if held and not leg.holds_trunk_slot and leg.plan.trunk is not None:
            self.directory.give_trunk_slot(leg.plan.trunk)

    @property
    def caller_present(self) -> bool:
        """The caller is still in Stasis (perhaps hanging up: see `caller_leaving`)."""
        return self.caller.state in (CallerState.PRESENT, CallerState.LEAVING)

    @property
    def caller_leaving(self) -> bool:
        """The caller hung up; its StasisEnd is on the way (a step must not go on)."""
        return self.caller.state is CallerState.LEAVING

    # ------------------------------------------------------------------ start and flow

    def note(self, text: str) -> None:
        """Add a line to the call's readable history."""
        # Interned: most lines ("alice: ringing") read the same in every call of a route, so
        # thousands of calls in progress share one copy (the table drops it with the last).
        self._notes += (self.clock.now(), sys.intern(text))

    @property
    def timeline(self) -> list[TimelineEntry]:
        """The call's readable history, oldest line first."""
        entries = []
        for at, text in zip(self._notes[::2], self._notes[1::2], strict=True):
            assert isinstance(at, datetime) and isinstance(text, str)
            entries.append(TimelineEntry(at, text))
        return entries

    async def _start(self) -> None:
        self.directory.claim(self.caller.channel_id, self)
        plan = self.flow
        record = self.record
        self.journal.add(
            CallArrived(
                at=record.started_at,
                did=record.did,
                caller_number=record.caller_number or "",
                caller_name=record.caller_name or "",
                trunk=record.trunk,
                route=plan.route if isinstance(plan, Flow) else None,
                direction=str(record.direction),
                dialled=record.dialled,
                presented=record.presented,
                emergency=record.emergency,
            )
        )
        if isinstance(plan, Reject):
            await self._reject(plan)
            return
        assert isinstance(plan, Flow)
        if plan.call_out is not None:
            self.note(
                f"outgoing call from {plan.caller_number} to {plan.call_out.dialled}"
                f"{' (emergency)' if plan.call_out.emergency else ''}, presenting "
                f"{plan.call_out.presented}{' withheld' if plan.caller_withheld else ''}"
            )
        else:
            self.note(
                f"incoming call from {plan.caller_number}"
                f"{' (number withheld)' if plan.caller_withheld else ''} to {plan.did}: "
                f"route {plan.route}"
            )
        log.info(
            "call routed",
            route=plan.route,
            start=plan.start,
            steps=len(plan.steps),
            caller=plan.caller_number,
        )
        if plan.limits is not None and not await self.plan_allows(plan):
            await self.enter(plan.limits.at_limit)
            return
        await self.enter(plan.start)

    async def plan_allows(self, flow: Flow) -> bool:
        """Whether the number's plan lets this call in (else it goes to the plan's at_limit).

        A database that cannot answer lets the call in: pbxd's failure is never the caller's.
        """
        assert flow.limits is not None
        if self.limits is None:
            return True
        now = self.clock.now()
        try:
            items = await self.limits.used(flow.did, ZoneInfo(flow.timezone), now)
            calls = await self.limits.calls_in_progress(flow.did, now, self.call_id)
        except Exception as exc:
            log.warning("plan_usage_unreadable", error=f"{type(exc).__name__}: {exc}")
            return True
        plan = flow.limits.plan
        why = limits.refusal(plan, limits_kind(flow), limits.used_seconds(items, now), calls)
        if why is None:
            return True
        self.note(f"plan limit: {why}")
        log.warning("plan_limit_reached", plan=plan.name, why=why, calls=calls)
        return False

    def _watch_plan(self, leg: Leg) -> bool:
        """An answered leg that uses the plan's minutes: watch it (unless the plan lets calls
        finish, or the leg costs nothing: a softphone, an emergency call); True if watched."""
        flow = self.flow
        if self.limits is None or not isinstance(flow, Flow) or flow.limits is None:
            return False
        plan = flow.limits.plan
        if plan.finish or limits.limit_seconds(plan, limits_kind(flow)) is None:
            return False
        if leg.plan.trunk is None or leg.plan.emergency_region is not None:
            return False
        self.arm("plan_watch", 0.0, leg.channel_id)
        return True

    async def _plan_watch(self, leg_id: str) -> None:
        """Cut the call at the plan's minutes, warning the caller `warn_before` seconds ahead."""
        flow, leg = self.flow, self.leg(leg_id)
        if leg is None or leg is not self.winner or self.state is not CallState.BRIDGED:
            return
        assert isinstance(flow, Flow) and flow.limits is not None and self.limits is not None
        plan, kind = flow.limits.plan, limits_kind(flow)
        allowed = limits.limit_seconds(plan, kind)
        assert allowed is not None
        now = self.clock.now()
        try:
            items = await self.limits.used(flow.did, ZoneInfo(flow.timezone), now)
        except Exception as exc:
            log.warning("plan_usage_unreadable", error=f"{type(exc).__name__}: {exc}")
            self.arm("plan_watch", limits.RECHECK_SECONDS, leg_id)
            return
        used = limits.used_seconds(items, now)[kind]
        sharing = sum(1 for item in items if item.kind is kind and item.ended_at is None)
        verdict = limits.watch(plan, allowed - used, sharing, self.plan_warned)
        if verdict.cut:
            self.note(f"plan {plan.name}: {kind} minutes used up ({used} s), hanging up")
            log.warning("plan_limit_cut", plan=plan.name, kind=str(kind), used=used)
            await self.end_everything(HangupReason.NORMAL)
            return
        if verdict.warn:
            self.plan_warned = True
            # Kept first, on the caller's channel and in the journal: a call adopted after a
            # restart is not warned a second time, even if the journal's batch was lost.
            await self._mark_caller(PLAN_WARNED_VARIABLE, plan.name)
            self.journal.add(PlanWarned(now, plan.name, str(kind)))
            self.note(f"plan {plan.name}: {kind} minutes run out soon, warning the caller")
            log.info("plan_limit_warning", plan=plan.name, kind=str(kind), used=used)
            await self.play(plan.warning)
        self.arm("plan_watch", verdict.again_in, leg_id)

    async def enter(self, name: str) -> None:
        """Run the flow from step `name` until a step waits for something (or the call ends)."""
        from pbxd.calls.steps import handler_for

        assert isinstance(self.flow, Flow)
        for _ in range(MAX_STEPS_WITHOUT_WAITING):
            if self.state in (CallState.ENDING, CallState.ENDED):
                return
            if self.caller.state is not CallerState.PRESENT:
                return  # hung up: its StasisEnd ends the call
            step = self.flow.step(name)
            self.step_name = name
            ring = isinstance(step, RingStep)
            self.journal.add(
                StepEntered(
                    self.clock.now(),
                    name,
                    step.kind,
                    str(step.strategy) if isinstance(step, RingStep) else None,
                    self.legs_made + 1 if ring else None,
                )
            )
            self.handler = handler_for(step, self)
            outcome = await self.handler.enter()
            if outcome is None:
                return
            following = self._leave(outcome)
            if following is None:
                return
            name = following
        log.error("flow jumps without waiting; ending the call", step=name)
        await self.end_everything(HangupReason.FAILURE)

    def _leave(self, outcome: StepOutcome) -> str | None:
        """Journal the current step's outcome; the step it leads to, if any."""
        assert isinstance(self.flow, Flow) and self.step_name is not None
        handler = self.handler
        following = (
            handler.next_step(outcome)
            if handler is not None
            else self.flow.step(self.step_name).exits().get(outcome)
        )
        label = handler.path_label(outcome) if handler is not None else None
        self.journal.add(StepLeft(self.clock.now(), self.step_name, outcome, label))
        self._cancel_step_timers()
        self.handler = None
        return following

    async def after(self, outcome: StepOutcome | None) -> None:
        """A step handler ended its step with `outcome` (None: it goes on): follow the flow."""
        if outcome is None or self.handler is None:
            return
        following = self._leave(outcome)
        if following is not None:
            await self.enter(following)

    async def _reject(self, plan: Reject) -> None:
        self.journal.add(
            CallRejected(self.clock.now(), str(plan.why), str(plan.reason), plan.cause)
        )
        given = f"cause {plan.cause}" if plan.cause is not None else str(plan.reason)
        self.note(f"rejected: {plan.message} (hangup: {given})")
        log.warning(
            "call rejected", reason=str(plan.why), caller=plan.caller_number, detail=plan.detail
        )
        self.to(CallState.ENDING)
        if plan.cause is not None:
            await self.hangup(self.caller.channel_id, reason_code=plan.cause)
        else:
            await self.hangup(self.caller.channel_id, reason=plan.reason)
        self.arm("end_grace", END_GRACE_SECONDS)

    async def _resume(self) -> None:
        """Take a call back after a restart: listen to its channels, then catch up."""
        self.directory.claim(self.caller.channel_id, self)
        for leg in self.legs:
            self.directory.claim(leg.channel_id, self)
        if self.state is CallState.BRIDGED:
            self.note("adopted after restart: still bridged")
            log.info("call adopted", bridge=self.bridge_id)
            if self.winner is not None:
                self.arm_max_duration(self.winner)  # counted from its answer, before the restart
                if self._watch_plan(self.winner) and not self.plan_warned:
                    # The journal may have lost it (no CDR row at all): the channel says.
                    marked = await self._caller_mark(PLAN_WARNED_VARIABLE)
                    self.plan_warned = marked is not None
            self.deliver(Resync())  # it may have ended between our check and now
            return
        if self.handler is not None:
            if self.state in (CallState.MENU, CallState.PLAYING, CallState.RECORDING):
                await self._journal_kept()  # it plays to the caller: its ids must be found
            await self.after(await self.handler.resume())

    async def _journal_kept(self) -> None:
        """Wait (bounded) until the journal so far, its `CallAdopted` with it, is written: a
        run that dies too finds the prompts this one starts (their ids follow it)."""
        flush = getattr(self.journal.sink, "flush", None)
        if flush is None:
            return
        try:
            async with asyncio.timeout(ADOPTION_WRITE_SECONDS):
                await flush()
        except TimeoutError:
            log.warning("adoption_not_yet_written", waited_s=ADOPTION_WRITE_SECONDS)

    # ------------------------------------------------------------------ caller

    async def try_caller_request(self, request: Awaitable[None]) -> AriError | None:
        """Run a request on the caller's channel; the error if the caller is already gone."""
        try:
            await request
        except (AriNotFound, AriConflict, AriUnprocessable) as exc:
            return exc
        return None

    async def caller_request(self, request: Awaitable[None]) -> bool:
        """Run a request on the caller's channel; False (and end) if the caller is gone."""
        error = await self.try_caller_request(request)
        if error is not None:
            await self.caller_already_gone(error)
            return False
        return True

    async def caller_already_gone(self, error: AriError) -> None:
        """The caller hung up while we were deciding: an expected race, not an error."""
        log.info("caller already gone", status=error.status, message=error.message)
        # Legs stop now; the CDR waits (briefly) for the ChannelDestroyed and its cause.
        self._expect_destroyed(self.caller.channel_id)
        await self._caller_gone(None)

    async def ring_caller(self) -> AriError | None:
        """Indicate ringing to the caller (not answered); the error if it is gone."""
        if self.caller.ringing:
            self.caller.ringing = False  # a later ring step rings again, as without it
            return None
        return await self.try_caller_request(self.ari.ring(self.caller.channel_id))

    async def answer_caller(self, by: str | None, at: datetime | None = None) -> bool:
        """Answer the caller (for target `by`, or for pbxd itself); False if it is gone.

        `at`: the moment the call counts as answered (the target's answer, by Asterisk's
        clock), else now. A caller pbxd answered already (a greeting) is not answered twice.
        """
        answered = self.record.answered_at is not None
        self.caller.ringing = False
        if not answered and not await self.caller_request(self.ari.answer(self.caller.channel_id)):
            return False
        self.journal.add(CallerAnswered(at or self.clock.now(), by))
        return True

    # ------------------------------------------------------------------ legs

    def add_legs(self, step: RingStep, slots: Sequence[Slot] | None = None) -> list[Leg]:
        """The legs of a ring step, waiting for their turn (ids numbered across the call).

        `slots`: which of the step's planned legs to make, in which order and turn (its
        strategy's `arrange`); by default each planned leg once, as written.
        """
        made = []
        for slot in slots if slots is not None else [Slot(i) for i in range(len(step.legs))]:
            self.legs_made += 1
            leg_id = ids.leg_id(self.call_id, self.legs_made)
            made.append(Leg(step.legs[slot.plan], leg_id, step.name, turn=slot.turn))
        self.legs.extend(made)
        return made

    def skip_leg(self, leg: Leg, why: LegEnd) -> None:
        """A leg not rung at all (offline, do-not-disturb, on another call): ended at once,
        without a channel, kept in the call log with why."""
        now = self.clock.now()
        self.journal.add(
            LegCreated(now, leg.channel_id, leg.plan.target, leg.plan.dial_string, leg.step)
        )
        self.leg_to(leg, LegState.ENDED, why)
        self.journal.add(LegEnded(now, leg.channel_id, why))
        self.note(f"{leg.plan.target}: not rung, {_SKIP_NOTES[why]}")
        log.info("leg_skipped", target=leg.plan.target, why=str(why))

    def leg(self, channel_id: str) -> Leg | None:
        """The leg with this channel id."""
        for leg in self.legs:
            if leg.channel_id == channel_id:
                return leg
        return None

    async def start_leg(self, leg: Leg) -> None:
        """Create the leg's channel (dialled once its StasisStart arrives)."""
        trunk = leg.plan.trunk
        now = self.clock.now()
        barred = leg_refusal(leg.plan)  # the last check before anything reaches Asterisk
        if barred is not None:
            self.journal.add(
                LegCreated(now, leg.channel_id, leg.plan.target, leg.plan.dial_string, leg.step)
            )
            leg.cause = BARRED_CAUSE
            self.leg_to(leg, LegState.ENDED, LegEnd.REFUSED)
            self.journal.add(LegEnded(now, leg.channel_id, LegEnd.REFUSED, BARRED_CAUSE))
            self.note(f"{leg.plan.target}: not rung, barred: {barred}")
            log.warning("leg_barred", target=leg.plan.target, trunk=trunk, why=barred)
            return
        if trunk is not None and leg.plan.emergency_region is not None:
            self.directory.hold_trunk_slot(trunk)  # an emergency call goes out, even above it
        elif trunk is not None and not self.directory.take_trunk_slot(trunk):
            self.journal.add(
                LegCreated(now, leg.channel_id, leg.plan.target, leg.plan.dial_string, leg.step)
            )
            self.leg_to(leg, LegState.ENDED, LegEnd.TRUNK_FULL)
            self.journal.add(LegEnded(now, leg.channel_id, LegEnd.TRUNK_FULL))
            self.note(f"{leg.plan.target}: not rung, trunk {trunk} at its maximum of legs")
            log.warning("trunk at capacity: leg not placed", trunk=trunk, target=leg.plan.target)
            return
        self.leg_to(leg, LegState.CREATING)
        self.journal.add(
            LegCreated(now, leg.channel_id, leg.plan.target, leg.plan.dial_string, leg.step)
        )
        self.directory.claim(leg.channel_id, self)
        try:
            await self.ari.create_channel(
                leg.plan.dial_string,
                originator=self.caller.channel_id,
                channel_id=leg.channel_id,
                app_args=ids.leg_app_args(self.call_id),
                variables=caller_id_variables(leg.plan),
            )
        except AriError as exc:
            # Offline or unknown endpoint: Asterisk answers 500 "Allocation failed".
            self.leg_to(leg, LegState.ENDED, LegEnd.UNREACHABLE)
            self.journal.add(LegEnded(self.clock.now(), leg.channel_id, LegEnd.UNREACHABLE))
            self.note(f"{leg.plan.target}: unreachable ({exc.status} {exc.message})")
            log.info(
                "leg could not be created",
                target=leg.plan.target,
                status=exc.status,
                message=exc.message,
            )
            return
        self.caller.destroyed_follows = True  # named as the leg's originator
        self.note(f"{leg.plan.target}: calling {leg.plan.dial_string}")

    async def bridge_early(self, leg: Leg) -> bool:
        """Put the caller and a leg not yet dialled in the call's bridge, so the far end's
        early media (ringback, announcements) reaches the caller; False if it failed (the
        leg is dialled anyway: the caller then hears our ringing indication only)."""
        try:
            if self.bridge_id is None:
                await self._bridge([self.caller.channel_id, leg.channel_id])
            else:
                await self.ari.add_channel(self.bridge_id, [leg.channel_id])
        except AriError as exc:
            log.warning("early bridging failed", status=exc.status, message=exc.message)
            return False
        return True

    async def dial(self, leg: Leg, ring_time: int) -> bool:
        """Dial a leg in Stasis for `ring_time` seconds; False (leg hung up) if refused."""
        self.leg_to(leg, LegState.DIALING)
        try:
            # No `caller`: Asterisk would copy the inbound caller ID over the leg's connected
            # line, which is what chan_pjsip sends in From, undoing the route's presentation.
            await self.ari.dial(leg.channel_id, timeout=ring_time)
        except AriError as exc:
            log.info("dial refused", target=leg.plan.target, status=exc.status, message=exc.message)
            await self.hangup(leg.channel_id, reason=HangupReason.NORMAL)
            return False
        return True

    async def hang_up_legs(self, legs: list[Leg], **how: HangupReason | int) -> None:
        """Hang up these legs at once (each goes ENDING; gone on its ChannelDestroyed)."""
        for leg in legs:
            self.leg_to(leg, LegState.ENDING)
        reason = how.get("reason")
        code = how.get("reason_code")
        await asyncio.gather(
            *(
                self.hangup(
                    leg.channel_id,
                    reason=reason if isinstance(reason, HangupReason) else None,
                    reason_code=code if isinstance(code, int) else None,
                )
                for leg in legs
            )
        )

    def drop_waiting(self, legs: list[Leg]) -> None:
        """Legs whose turn will never come: ended without a channel (not in the CDR)."""
        for leg in legs:
            if leg.state is LegState.WAITING:
                self.leg_to(leg, LegState.ENDED, LegEnd.NOT_RUNG)

    async def connect(self, leg: Leg, answered_at: datetime | None = None) -> bool:
        """A leg answered (at `answered_at`): answer the caller and bridge them; False if
        the call ended. The call is billed from the target's answer."""
        self.to(CallState.ANSWERING)
        self.winner = leg
        if not await self.answer_caller(leg.plan.target, answered_at):
            return False
        if self.bridge_id is not None:  # bridged before dialling (early media): talking now
            self.to(CallState.BRIDGED)
            self.journal.add(Bridged(self.clock.now(), self.bridge_id, leg.channel_id))
            self.note(f"bridged caller with {leg.plan.target}")
            self._watch_plan(leg)
            return True
        try:
            # Neither side's identity crosses the bridge: the caller never learns the target's
            # real number (COLP from its 200 OK), and the target keeps what its policy showed.
            bridge_id = await self._bridge(
                [self.caller.channel_id, leg.channel_id], inhibit_connected_line_updates=True
            )
        except AriError as exc:
            log.warning("bridging failed", status=exc.status, message=exc.message)
            await self.end_everything(HangupReason.NORMAL)
            return False
        self.to(CallState.BRIDGED)
        self.journal.add(Bridged(self.clock.now(), bridge_id, leg.channel_id))
        self.note(f"bridged caller with {leg.plan.target}")
        self._watch_plan(leg)
        return True

    async def _bridge(
        self, channel_ids: list[str], *, inhibit_connected_line_updates: bool | None = None
    ) -> str:
        """Put channels in the call's bridge (`bridge_id`, set as soon as it exists): an idle
        one of the pool, else a new one."""
        pooled = self.bridges.take() if self.bridges is not None else None
        if pooled is not None:
            self.bridge_id = pooled
            try:
                await self.ari.add_channel(
                    pooled,
                    channel_ids,
                    inhibit_connected_line_updates=inhibit_connected_line_updates,
                )
                return pooled
            except AriNotFound:  # 404 is the bridge's: destroyed behind our back
                log.info("pooled bridge gone", bridge=pooled)
                self.bridge_id = None
        if self.bridges is not None:
            self.bridge_id = await self.bridges.create()
        else:
            bridge = await self.ari.create_bridge(
                bridge_type="mixing",
                bridge_id=ids.bridge_id(self.call_id),
                name=f"pbxd {self.did}",
            )
            self.bridge_id = bridge.id
        await self.ari.add_channel(
            self.bridge_id,
            channel_ids,
            inhibit_connected_line_updates=inhibit_connected_line_updates,
        )
        return self.bridge_id

    async def _leg_gone(self, leg: Leg, cause: int | None, at: datetime | None = None) -> None:
        if leg.state is LegState.ENDED:
            return
        leg.cause = cause if cause is not None else leg.cause
        self.leg_to(leg, LegState.ENDED)
        self.journal.add(
            LegEnded(at or self.clock.now(), leg.channel_id, LegEnd.HUNG_UP, leg.cause)
        )
        self.disarm(f"ring_time:{leg.channel_id}")
        self.note(f"{leg.plan.target}: ended (cause {leg.cause})")
        if leg is self.winner:
            if self.state in (CallState.BRIDGED, CallState.ANSWERING):
                self.note("callee hung up")
                await self.end_everything(HangupReason.NORMAL)
            return
        if self.handler is not None and self.state is CallState.RINGING:
            await self.after(await self.handler.on_leg_ended(leg))

    # ------------------------------------------------------------------ media

    @property
    def flow_timezone(self) -> str:
        """The called number's time zone (for the voicemail back office's mails)."""
        return self.flow.timezone if isinstance(self.flow, Flow) else "UTC"

    def next_playback(self) -> str:
        """A new playback id for a prompt to the caller (to journal before it is asked)."""
        self.playbacks_made += 1
        return ids.playback_id(self.call_id, self.playbacks_made)

    async def play(self, media: Sequence[str], playback: str | None = None) -> str | None:
        """Play prompts to the caller under our own playback id (`playback`, from
        `next_playback`, or a new one); None if the caller is gone.

        On an unanswered caller this is early media: Asterisk sends 183 with the audio.
        """
        playback = playback or self.next_playback()
        self.caller.ringing = False  # early media from now on: ringing is indicated anew

        async def request() -> None:
            await self.ari.play_with_id(self.caller.channel_id, playback, list(media))

        return playback if await self.caller_request(request()) else None

    async def play_to_leg(self, leg: Leg, media: Sequence[str], playback: str) -> str | None:
        """Play prompts to a leg's callee only (it is not bridged yet) under the id `playback`;
        None if it is gone."""
        try:
            await self.ari.play_with_id(leg.channel_id, playback, list(media))
        except AriError as exc:
            log.info("leg gone before its prompt", target=leg.plan.target, status=exc.status)
            return None
        return playback

    async def leg_variable(self, leg: Leg, name: str) -> str | None:
        """A variable of the leg's channel, as Asterisk keeps it; None when unset, gone or
        unreadable (the caller of this decides without it, never fails the call)."""
        try:
            return await self.ari.get_variable(leg.channel_id, name)
        except AriNotFound:
            return None
        except AriError as exc:
            log.warning("leg variable unreadable", target=leg.plan.target, status=exc.status)
            return None

    async def set_leg_variable(self, leg: Leg, name: str, value: str) -> None:
        """Set a variable on the leg's channel (a leg gone meanwhile is not an error)."""
        try:
            await self.ari.set_variable(leg.channel_id, name, value)
        except AriError as exc:
            log.info("leg variable not set", target=leg.plan.target, status=exc.status)

    async def _mark_caller(self, name: str, value: str) -> None:
        """Set a variable on the caller's channel: Asterisk keeps it across our restarts (a
        caller gone meanwhile, or a refusal, is not an error: the call goes on without)."""
        try:
            await self.ari.set_variable(self.caller.channel_id, name, value)
        except AriError as exc:
            log.info("caller variable not set", variable=name, status=exc.status)

    async def _caller_mark(self, name: str) -> str | None:
        """A variable of the caller's channel set by `_mark_caller`; None when unset or gone."""
        try:
            return await self.ari.get_variable(self.caller.channel_id, name)
        except AriNotFound:
            return None
        except AriError as exc:
            log.warning("caller variable unreadable", variable=name, status=exc.status)
            return None

    async def playback_plays(self, playback: str) -> bool:
        """Whether Asterisk still has this playback (queued or playing); False once over."""
        try:
            return (await self.ari.get_playback(playback)).state in LIVE_PLAYBACK_STATES
        except AriNotFound:
            return False

    async def stop_playback(self, playback: str) -> None:
        """Stop a playback (one already finished is gone: not an error)."""
        with contextlib.suppress(AriNotFound):
            await self.ari.stop_playback(playback)

    async def stop_unrecorded_prompts(self) -> int:
        """Adopted: stop the caller's prompts the last run started but its journal lost; how
        many still played (once: later calls find none).

        Asterisk lists no playbacks by channel, but their ids are ours, numbered in order
        after the last one journaled (`unrecorded_playbacks_from`): each is asked for until
        UNRECORDED_MISSES in a row are gone. Asterisk queues a channel's playbacks, so one
        left playing would be heard through before ours, and keys would stop ours, not it.
        """
        number, self.unrecorded_from = self.unrecorded_from, None
        if number is None:
            return 0
        stopped = misses = 0
        while misses < UNRECORDED_MISSES:
            playback = ids.playback_id(self.call_id, number)
            if await self.playback_plays(playback):
                await self.stop_playback(playback)
                log.info("unjournaled_prompt_stopped", playback=playback)
                stopped, misses = stopped + 1, 0
            else:
                misses += 1
            number += 1
        return stopped

    async def live_recording_state(self, name: str) -> str | None:
        """The state of a live recording (`recording`, …); None once it is over (or never was)."""
        try:
            return (await self.ari.get_live_recording(name)).state
        except AriNotFound:
            return None

    async def stored_recording_seconds(self, name: str) -> int | None:
        """How long a stored WAV recording lasts, in whole seconds; None when there is none."""
        try:
            data = await self.ari.stored_recording_file(name)
        except AriNotFound:
            return None
        return wav_seconds(len(data))

    async def record_caller(
        self, name: str, *, max_seconds: int, silence_seconds: int, finish_key: str
    ) -> bool:
        """Record the caller into the stored recording `name`; False if the caller is gone."""

        async def request() -> None:
            await self.ari.record(
                self.caller.channel_id,
                name,
                file_format="wav",
                max_duration_seconds=max_seconds,
                max_silence_seconds=silence_seconds,
                if_exists="overwrite",
                beep=False,
                terminate_on=finish_key,
            )

        return await self.caller_request(request())

    async def stop_recording(self, name: str) -> None:
        """End a live recording, keeping its file (RecordingFinished follows)."""
        with contextlib.suppress(AriNotFound):
            await self.ari.stop_recording(name)

    async def discard_recording(self, name: str) -> None:
        """A recording too short to keep: the back office deletes it (or Asterisk, now)."""
        if self.desk is not None:
            await self.desk.discard(name, call_id=self.call_id, did=self.did)
            return
        with contextlib.suppress(AriNotFound):
            await self.ari.delete_stored_recording(name)

    async def keep_message(self, message: NewMessage) -> str:
        """Hand a message to the voicemail back office; its id in the box."""
        if self.desk is None:
            log.warning("voicemail kept on Asterisk: no back office", recording=message.recording)
            return message.recording
        return await self.desk.keep(message)

    # ------------------------------------------------------------------ ending

    async def end_everything(
        self,
        caller_reason: HangupReason,
        leg_reason: HangupReason = HangupReason.NORMAL,
        *,
        cause: int | None = None,
    ) -> None:
        """Hang up every live channel and the bridge; the call ends when all are gone.

        `cause`: a Q.850 cause for every channel instead of the reasons (`reason_code`).
        """
        if self.state in (CallState.ENDING, CallState.ENDED):
            return
        self.to(CallState.ENDING)
        self.cancel_timers()
        self.drop_waiting(self.legs)
        live = [leg for leg in self.legs if leg.live and leg.state is not LegState.ENDING]
        for leg in live:
            self.leg_to(leg, LegState.ENDING)
        legs_reason, reason = (None, None) if cause else (leg_reason, caller_reason)
        await asyncio.gather(
            *(self.hangup(leg.channel_id, reason=legs_reason, reason_code=cause) for leg in live),
            *(
                [self.hangup(self.caller.channel_id, reason=reason, reason_code=cause)]
                if self.caller_present
                else []
            ),
        )
        if self.bridges is None:  # a pooled bridge waits for every channel to be gone
            await self._destroy_bridge()
        self.arm("end_grace", END_GRACE_SECONDS)
        await self._maybe_finish()

    async def _destroy_bridge(self, *, emptied: bool = False) -> None:
        """Done with the call's bridge: back to the pool if Asterisk confirmed every channel of
        the call gone (`emptied`: nothing is left in it), else destroyed."""
        if self.bridge_id is None:
            return
        bridge_id, self.bridge_id = self.bridge_id, None
        if emptied and self.bridges is not None and ids.is_pooled_bridge(bridge_id):
            await self.bridges.give_back(bridge_id)
            return
        with contextlib.suppress(AriNotFound):  # already gone with its last channel
            await self.ari.destroy_bridge(bridge_id)

    async def hangup(
        self,
        channel_id: str,
        *,
        reason: HangupReason | None = None,
        reason_code: int | None = None,
    ) -> None:
        """DELETE a channel of this call; a channel already gone is not an error."""
        if channel_id == self.caller.channel_id:
            if reason is not None:
                self.caller.hung_up_with = reason
            self.caller.requested_cause = (
                reason_code
                if reason_code is not None
                else CAUSE_OF_REASON[reason or HangupReason.NORMAL]
            )
        try:
            if reason_code is not None:
                await self.ari.hangup(channel_id, reason_code=reason_code)
            else:
                await self.ari.hangup(channel_id, reason=str(reason or HangupReason.NORMAL))
        except AriNotFound:
            pass  # already gone: the race is expected
        except AriError as exc:
            log.warning("hangup failed", channel=channel_id, status=exc.status, message=exc.message)

    async def _caller_gone(self, cause: int | None, at: datetime | None = None) -> None:
        if not self.caller_present:
            return
        self._caller_to(CallerState.GONE)
        self.caller.cause = cause if cause is not None else self.caller.cause
        answered = self.record.answered_at is not None
        self.journal.add(CallerGone(at or self.clock.now(), self.caller.cause))
        if (
            self.state in (CallState.RINGING, CallState.ANSWERING, CallState.PLAYING)
            and not answered
        ):
            self.note(f"caller hung up while ringing (cause {self.caller.cause})")
            log.info("caller abandoned", cause=self.caller.cause)
        elif self.state in (
            CallState.BRIDGED,
            CallState.ANSWERING,
            CallState.RECORDING,
            CallState.MENU,
        ):
            self.note(f"caller hung up (cause {self.caller.cause})")
        if self.handler is not None and self.state not in (CallState.ENDING, CallState.ENDED):
            outcome = await self.handler.on_caller_gone()
            if outcome is not None and self.handler is not None:
                self._leave(outcome)
        if self.state not in (CallState.ENDING, CallState.ENDED):
            await self.end_everything(HangupReason.NORMAL)
        await self._maybe_finish()

    async def _maybe_finish(self) -> None:
        """End the call once Asterisk confirmed every one of its channels destroyed."""
        if self.state is not CallState.ENDING or self.caller.state is not CallerState.DESTROYED:
            return
        if any(leg.state is not LegState.ENDED for leg in self.legs):
            return
        await self._finish(emptied=True)

    async def _finish(
        self, why: CallEnd = CallEnd.NORMAL, at: datetime | None = None, *, emptied: bool = False
    ) -> None:
        await self._destroy_bridge(emptied=emptied)
        ended_at = at or self.clock.now()
        self.journal.add(CallEnded(ended_at, self.caller.cause, why))
        if self.winner is not None:
            self.roster.call_over(self.winner.plan.target, ended_at)  # idle from now
        self.cancel_timers()
        self.to(CallState.ENDED)
        record = self.record
        self.note(
            f"call ended: {record.disposition}, {record.duration} s, billable {record.billsec} s"
        )
        log.info(
            "call ended",
            disposition=str(record.disposition),
            duration=record.duration,
            billsec=record.billsec,
            hangup_cause=record.hangup_cause,
            path=" > ".join(self.journal.path),
        )

    async def _abort(self) -> None:
        """After an unexpected error: hang everything up, close the CDR, never strand a caller."""
        try:
            await self.end_everything(HangupReason.FAILURE)
        except Exception:
            log.exception("cleanup after failure also failed")
        self._close_legs_lost(self.clock.now())
        self._caller_destroyed()  # we stop listening: nothing more will come
        if self.state is not CallState.ENDING:
            self.to(CallState.ENDING)
        await self._finish(CallEnd.FAILURE)

    def _close_legs_lost(self, at: datetime, cause: int | None = None) -> None:
        """Close every leg still open without Asterisk's word (its cause, or `cause`)."""
        for leg in self.legs:
            if leg.state is not LegState.ENDED:
                self.leg_to(leg, LegState.ENDED, LegEnd.LOST)
                lost_cause = cause if cause is not None else leg.cause
                self.journal.add(LegEnded(at, leg.channel_id, LegEnd.LOST, lost_cause))

    async def end_lost(self, at: datetime) -> None:
        """Asterisk lost the call while ARI was away: close it at `at`, billed up to then."""
        if self.state is CallState.ENDED:
            return
        self.note("every channel gone while the connection to Asterisk was down")
        log.warning("call_lost_with_asterisk", lost_at=at.isoformat())
        self.cancel_timers()
        self._close_legs_lost(at, LOST_CAUSE)
        self.caller.cause = self.caller.cause or LOST_CAUSE
        self._caller_destroyed()
        if self.state is not CallState.ENDING:
            self.to(CallState.ENDING)
        self.bridge_id = None  # gone with Asterisk's channels
        await self._finish(CallEnd.ASTERISK_LOST, at)

    # ------------------------------------------------------------------ timers

    def arm(self, name: str, seconds: float, key: str = "") -> None:
        """Deliver Timer(name) through the queue in `seconds` (re-arming replaces it).

        Names starting `step:` belong to the current step: they are cancelled when it ends.
        """
        self.disarm(name)
        # A partial of the plain function, the session and the Timer: no closure (function,
        # cells) nor bound method per timer.
        timer = Timer(name.partition(":")[0], key)
        deliver = functools.partial(CallSession.deliver, self, timer)
        self._timers[name] = self.clock.call_later(seconds, deliver)

    def disarm(self, name: str) -> None:
        """Cancel a timer if armed."""
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _cancel_step_timers(self) -> None:
        for name in [n for n in self._timers if n.startswith("step")]:
            self.disarm(name)

    def cancel_timers(self) -> None:
        """Cancel every timer of the call (not the checks of channels said to be gone)."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    # ------------------------------------------------------------------ dispatch

    async def _handle(self, item: QueueItem) -> None:
        if isinstance(item, Timer):
            await self._on_timer(item)
        elif isinstance(item, Resync):
            await self.resync(item.lost_at)
        else:
            await self._on_event(item)

    async def _on_timer(self, timer: Timer) -> None:
        if timer.name == "vanished":
            self._vanish_checks.pop(timer.key, None)
            await self._channel_vanished(timer.key)
        elif timer.name == "end_grace":
            if self.state is CallState.ENDING:
                await self._end_unconfirmed()
        elif timer.name == "max_duration":
            leg = self.leg(timer.key)
            if leg is self.winner and self.state in (CallState.ANSWERING, CallState.BRIDGED):
                assert leg is not None
                self.note(f"{leg.plan.target}: maximum call duration reached, hanging up")
                log.warning(
                    "leg_max_duration",
                    target=leg.plan.target,
                    trunk=leg.plan.trunk,
                    max_duration=leg.plan.max_duration,
                )
                await self.end_everything(HangupReason.NORMAL, cause=MAX_DURATION_CAUSE)
        elif timer.name == "plan_watch":
            await self._plan_watch(timer.key)
        elif timer.name == "ring_time":
            leg = self.leg(timer.key)
            if leg is not None and leg.state in (LegState.DIALING, LegState.RINGING):
                self.note(f"{leg.plan.target}: ring time over")
                await self.hang_up_legs([leg], reason=HangupReason.NO_ANSWER)
        elif self.handler is not None:
            self._timers.pop(f"{timer.name}:{timer.key}" if timer.key else timer.name, None)
            await self.after(await self.handler.on_timer(timer.name, timer.key))

    async def _end_unconfirmed(self) -> None:
        # Asterisk never confirmed some hangups (e.g. events lost): close the books anyway.
        log.warning("ending without confirmation of every hangup")
        self._close_legs_lost(self.clock.now())
        if self.caller_present:
            await self._caller_gone(None)
        self._caller_destroyed()
        await self._finish()

    async def _on_event(self, event: Event) -> None:
        channel_ids = event.channel_ids()
        channel_id = channel_ids[0] if channel_ids else ""
        is_caller = channel_id == self.caller.channel_id
        leg = None if is_caller else self.leg(channel_id)
        if not is_caller and leg is None:
            return
        if isinstance(event, StasisStart):
            if leg is not None and leg.state is LegState.CREATING and self.handler is not None:
                await self.after(await self.handler.on_leg_in_stasis(leg))
            elif leg is not None and leg.state is LegState.CREATING:
                await self.hang_up_legs([leg], reason=HangupReason.NORMAL)
        elif isinstance(event, ChannelStateChange):
            if leg is not None and event.channel.state == "Up":
                await self._leg_up(leg, event.timestamp)
            elif leg is not None and event.channel.state == "Ringing":
                # The callee's 180, with Dial RINGING in the same ms (every capture): this one
                # event is enough, so pbxd does not ask Asterisk for Dial events at all.
                self._leg_ringing(leg, event.timestamp)
        elif isinstance(event, ChannelHangupRequest):
            # A soft request (our DELETE, a dial timeout) carries Asterisk's flag 32, not a
            # Q.850 cause: the real cause only comes with ChannelDestroyed.
            if event.soft:
                return
            if is_caller and self.caller.state is CallerState.PRESENT:
                self._caller_to(CallerState.LEAVING)  # a prompt it cuts must not go on
            if event.cause is None:
                return
            if is_caller:
                self.caller.cause = event.cause
            elif leg is not None:
                leg.cause = event.cause
        elif isinstance(event, ChannelDestroyed):
            if is_caller:
                self.caller.cause = event.cause
                if self.caller.state is CallerState.GONE:
                    self.journal.add(CallerGone(event.timestamp, event.cause))
                    self._caller_to(CallerState.DESTROYED)
                else:
                    await self._caller_gone(event.cause, event.timestamp)
                    self._caller_destroyed()
            elif leg is not None:
                leg.cause = event.cause
                if leg.state is LegState.ENDED:
                    self.journal.add(LegCause(event.timestamp, leg.channel_id, event.cause))
                else:
                    await self._leg_gone(leg, event.cause, event.timestamp)
            await self._maybe_finish()
        elif isinstance(event, StasisEnd) and is_caller:
            # A leg is judged on its ChannelDestroyed, which follows at once with its cause;
            # the caller's departure is acted on now so legs stop ringing without delay.
            await self._caller_gone(None, event.timestamp)
            if not self.caller.destroyed_follows:
                await self._caller_left_for_good(event.timestamp)
        elif self.handler is not None:
            await self.after(await self.handler.on_event(event))

    def _leg_ringing(self, leg: Leg, at: datetime) -> None:
        if leg.state is LegState.DIALING:
            self.leg_to(leg, LegState.RINGING)
            self.journal.add(LegRinging(at, leg.channel_id))
            self.note(f"{leg.plan.target}: ringing")

    async def _leg_up(self, leg: Leg, at: datetime | None = None) -> None:
        """A leg answered: its step decides; a leg answering too late is answered elsewhere."""
        if leg.state in (LegState.ANSWERED, LegState.ENDING, LegState.ENDED):
            return
        if self.handler is None or self.winner is not None or self.state is not CallState.RINGING:
            # Answered a moment after another leg, or after the caller left.
            await self.hang_up_legs([leg], reason_code=ANSWERED_ELSEWHERE)
            return
        await self.after(await self.handler.on_leg_answered(leg, at or self.clock.now()))

    def arm_max_duration(self, leg: Leg) -> None:
        """Cut the answered leg (and the call) at its maximum duration, counted from its answer."""
        record = self.journal.legs.get(leg.channel_id)
        answered = record.answered_at if record is not None else None
        spent = (self.clock.now() - answered).total_seconds() if answered else 0.0
        self.arm("max_duration", max(0.0, leg.plan.max_duration - spent), leg.channel_id)

    def mark_answered(self, leg: Leg, at: datetime) -> None:
        """Record that `leg` answered (the ring step then connects it)."""
        self.leg_to(leg, LegState.ANSWERED)
        self.journal.add(LegAnswered(at, leg.channel_id))
        self.note(f"{leg.plan.target}: answered")
        log.info("answered", target=leg.plan.target)

    async def resync(self, lost_at: datetime | None = None) -> None:
        """After a reconnection: events may have been lost, so ask Asterisk what still exists.

        When every channel of the call is gone and the connection to Asterisk had dropped
        (`lost_at`), the call ended with it: it is closed at that moment, billed up to it.
        """
        channels = [self.caller.channel_id] if self.caller_present else []
        channels += [leg.channel_id for leg in self.legs if leg.live]
        found: dict[str, str] = {}
        gone: list[str] = []
        for channel_id in channels:
            try:
                found[channel_id] = (await self.ari.get_channel(channel_id)).state
            except AriNotFound:
                gone.append(channel_id)
            except AriError as exc:
                log.warning("resync failed", channel=channel_id, status=exc.status)
        if lost_at is not None and channels and len(gone) == len(channels):
            await self.end_lost(lost_at)
            return
        for channel_id in channels:
            if channel_id in gone:
                self._expect_destroyed(channel_id)
                continue
            leg = self.leg(channel_id)
            if leg is not None and found.get(channel_id) == "Up" and self.winner is None:
                await self._leg_up(leg)

    async def _caller_left_for_good(self, at: datetime) -> None:
        """A caller that originated no leg: its StasisEnd is the last Asterisk 22 says of it.

        No ChannelDestroyed follows (ivr_menu_dtmf, voicemail_record, early_media_playback
        traces), so its cause is the one its hangup request carried, or the one our own
        hangup asked for, or normal clearing (a BYE carries none).
        """
        if self.caller.state is CallerState.DESTROYED:
            return
        if self.caller.cause is None:
            self.caller.cause = self.caller.requested_cause or NORMAL_CLEARING
        self.journal.add(CallerGone(at, self.caller.cause))
        self._caller_destroyed()
        await self._maybe_finish()

    def _expect_destroyed(self, channel_id: str) -> None:
        """Asterisk says `channel_id` is gone: wait briefly for its ChannelDestroyed.

        Asterisk answers REST 404/409/422 a few ms before that event (with its cause) reaches us;
        if it never comes (events lost), `_channel_vanished` closes the channel.
        """
        if channel_id not in self._vanish_checks:
            self._vanish_checks[channel_id] = self.clock.call_later(
                VANISH_GRACE_SECONDS,
                functools.partial(self.deliver, Timer("vanished", channel_id)),
            )

    async def _channel_vanished(self, channel_id: str) -> None:
        """A channel Asterisk said was gone whose ChannelDestroyed never came: close it now."""
        if self.state is CallState.ENDED:
            return
        if channel_id == self.caller.channel_id:
            if self.caller.state is CallerState.DESTROYED:
                return
            self.note(f"channel {channel_id} vanished while events were not received")
            # Gone because we hung it up: its cause is the one our reason gives.
            if self.caller.cause is None and self.caller.hung_up_with is not None:
                self.caller.cause = CAUSE_OF_REASON[self.caller.hung_up_with]
            if self.caller_present:
                await self._caller_gone(None)
            else:
                self.journal.add(CallerGone(self.clock.now(), self.caller.cause))
            self._caller_destroyed()
        else:
            leg = self.leg(channel_id)
            if leg is None or leg.state is LegState.ENDED:
                return
            self.note(f"channel {channel_id} vanished while events were not received")
            await self._leg_gone(leg, None)
        await self._maybe_finish()
