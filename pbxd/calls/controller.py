"""One controller per call: drives its plan over ARI and writes its CDR as it goes.

Everything that happens to a call (ARI events, its timers, a resync after a reconnection)
goes through one queue and is handled in order by the call's own task, so no two handlers
of one call ever interleave. The daemon only routes events to the right controller.

CDR times are Asterisk's own event timestamps wherever an event marks the moment (arrival,
answer of a leg, hangups), so a busy daemon records when things happened, not when it got
to them; the moments pbxd itself causes (leg created, caller answered) use the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

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
    Dial,
    Event,
    StasisEnd,
    StasisStart,
)
from pbxd.cdr.records import CallRecord, Disposition, LegRecord
from pbxd.clock import Clock
from pbxd.config.destinations import (
    BARRED_CAUSE,
    DEFAULT_MAX_CALL_DURATION,
    MAX_DURATION_CAUSE,
)
from pbxd.config.files import HangupReason, RingStrategy
from pbxd.dialplan import LegPlan, Reject, RingPlan
from pbxd.dialplan.outcome import ANSWERED_ELSEWHERE, CAUSE_OF_REASON, unanswered_outcome
from pbxd.dialplan.tollfraud import leg_refusal

log = structlog.get_logger("pbxd.calls")

# After we hang a channel up, Asterisk confirms within milliseconds; past this, stop waiting.
END_GRACE_SECONDS = 5.0
# Asterisk's dial timeout ends a ringing leg; ours is the backstop if that never comes.
RING_BACKSTOP_SECONDS = 2.0
# Asterisk answers a REST 404 a few ms before its ChannelDestroyed (with the cause) reaches us.
VANISH_GRACE_SECONDS = 0.5


class CdrSink(Protocol):
    """Where a controller sends its records (the CDR store; a list in unit tests)."""

    def record_call(self, record: CallRecord) -> object:
        """Queue the call's current state for writing (the result is not used)."""
        ...

    def record_leg(self, record: LegRecord) -> object:
        """Queue a leg's current state for writing (the result is not used)."""
        ...


class ChannelDirectory(Protocol):
    """The daemon's map from channel id to controller, and its trunk capacity."""

    def claim(self, channel_id: str, controller: CallController) -> None:
        """Route this channel's events to `controller`."""
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


class CallState(StrEnum):
    """Where a call stands."""

    STARTING = "starting"
    RINGING = "ringing"
    ANSWERING = "answering"
    BRIDGED = "bridged"
    ENDING = "ending"
    ENDED = "ended"


class LegState(StrEnum):
    """Where one outbound leg stands."""

    WAITING = "waiting"
    CREATING = "creating"
    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDING = "ending"
    ENDED = "ended"


@dataclass(slots=True)
class Leg:
    """One outbound attempt to one target."""

    plan: LegPlan
    channel_id: str
    record: LegRecord
    state: LegState = LegState.WAITING
    cause: int | None = None
    note: str = ""
    slot: bool = False
    destroyed: bool = False  # no channel on Asterisk any more (or never had one)

    @property
    def live(self) -> bool:
        """True while the leg has (or is getting) a channel on Asterisk."""
        return self.state not in (LegState.WAITING, LegState.ENDED)


@dataclass(frozen=True, slots=True)
class Timer:
    """A timer firing, delivered through the call's queue like an event."""

    kind: str
    leg: str = ""


@dataclass(frozen=True, slots=True)
class Resync:
    """Check every channel still exists (after the event WebSocket reconnected)."""


QueueItem = Event | Timer | Resync


@dataclass(slots=True)
class TimelineEntry:
    """One line of a call's readable history."""

    at: datetime
    text: str


@dataclass(slots=True)
class CallerSide:
    """The inbound channel: `gone` once it left Stasis, `destroyed` once Asterisk freed it."""

    channel_id: str
    gone: bool = False
    destroyed: bool = False
    cause: int | None = None


@dataclass
class CallController:
    """Drives one call: ring the plan's legs, bridge the first answer, end cleanly."""

    call_id: str
    plan: RingPlan | Reject
    record: CallRecord
    ari: AriClient
    cdr: CdrSink
    clock: Clock
    directory: ChannelDirectory
    state: CallState = CallState.STARTING
    legs: list[Leg] = field(default_factory=list)
    bridge_id: str | None = None
    winner: Leg | None = None
    timeline: list[TimelineEntry] = field(default_factory=list)
    caller: CallerSide = field(init=False)
    queue: asyncio.Queue[QueueItem] = field(default_factory=asyncio.Queue, repr=False)
    _timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict, repr=False)
    # Channels Asterisk said are gone, waiting for their ChannelDestroyed (never cancelled early).
    _vanish_checks: dict[str, asyncio.TimerHandle] = field(default_factory=dict, repr=False)
    _timed_out: bool = False
    _started: float = 0.0  # clock.monotonic() when the route started ringing
    adopted: bool = False
    connection: int = 0  # which event-stream connection the call started on
    _caller_reason: HangupReason | None = None  # how we hung the caller up, if we did
    on_finished: Callable[[CallController], Awaitable[None] | None] | None = None

    def __post_init__(self) -> None:
        self.caller = CallerSide(self.call_id)
        if isinstance(self.plan, RingPlan):
            for index, leg_plan in enumerate(self.plan.legs, start=1):
                channel_id = f"{self.call_id}-{index}"
                self.legs.append(
                    Leg(
                        plan=leg_plan,
                        channel_id=channel_id,
                        record=LegRecord(
                            leg_id=channel_id,
                            call_id=self.call_id,
                            target=leg_plan.target,
                            destination=leg_plan.dial_string,
                            started_at=self.record.started_at,
                        ),
                    )
                )

    # ------------------------------------------------------------------ public

    @property
    def did(self) -> str:
        """The virtual number called."""
        return self.record.did

    def deliver(self, item: QueueItem) -> None:
        """Hand an event (or timer, or resync) to this call; never blocks."""
        self.queue.put_nowait(item)

    def describe(self) -> str:
        """The call's state as a person reads it."""
        lines = [
            f"call {self.call_id} to {self.did} from {self.record.caller_number}: {self.state}"
            + (f", route {self.record.route} ({self.record.strategy})" if self.record.route else "")
        ]
        for leg in self.legs:
            cause = f" cause {leg.cause}" if leg.cause is not None else ""
            note = f" ({leg.note})" if leg.note else ""
            lines.append(
                f"  leg {leg.plan.target} [{leg.plan.dial_string}]: {leg.state}{cause}{note}"
            )
        if self.bridge_id:
            lines.append(f"  bridge {self.bridge_id}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.describe()

    async def run(self) -> None:
        """The call's task: start the plan, then handle queued items until the call ends."""
        with structlog.contextvars.bound_contextvars(call_id=self.call_id, did=self.did):
            try:
                if self.adopted:
                    await self._resume()
                else:
                    await self._start()
                while self.state is not CallState.ENDED:
                    item = await self.queue.get()
                    await self._handle(item)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("call controller failed; cleaning the call up")
                await self._abort()
            finally:
                self._cancel_timers()
                for handle in self._vanish_checks.values():
                    handle.cancel()
                self._vanish_checks.clear()
                for channel in [self.caller.channel_id, *(leg.channel_id for leg in self.legs)]:
                    self.directory.release(channel)
                for leg in self.legs:
                    self._free_slot(leg)
                if self.on_finished is not None:
                    result = self.on_finished(self)
                    if result is not None:
                        await result

    # ------------------------------------------------------------------ start

    def _note(self, text: str) -> None:
        self.timeline.append(TimelineEntry(self.clock.now(), text))

    async def _start(self) -> None:
        self.directory.claim(self.caller.channel_id, self)
        plan = self.plan
        if isinstance(plan, Reject):
            await self._reject(plan)
            return
        self.state = CallState.RINGING
        self.cdr.record_call(self.record)
        self._note(
            f"incoming call from {plan.caller_number}"
            f"{' (number withheld)' if plan.caller_withheld else ''} to {plan.did}: "
            f"route {plan.route} "
            f"({plan.strategy}, timeout {plan.timeout} s)"
        )
        log.info(
            "call routed",
            route=plan.route,
            strategy=str(plan.strategy),
            legs=len(self.legs),
            caller=plan.caller_number,
        )
        self._started = self.clock.monotonic()
        self._arm("route_timeout", plan.timeout)
        first = self.legs if plan.strategy is RingStrategy.RINGALL else self.legs[:1]
        # Ringing is indicated while the legs are created: no round trip before the first
        # dial. A caller gone meanwhile is handled once every create has answered, so no
        # leg is left half-made.
        ring_error, *_ = await asyncio.gather(
            self._try_caller_request(self.ari.ring(self.caller.channel_id)),
            *(self._start_leg(leg) for leg in first),
        )
        if ring_error is not None:
            await self._caller_already_gone(ring_error)
            return
        await self._check_progress()

    async def _resume(self) -> None:
        """Take a call back after a restart: listen to its channels, then catch up.

        A bridged call just goes on. A ringing one gets what is left of its route timeout;
        whatever happened while nobody listened (a leg answered, a leg ended) is
        found by asking Asterisk, and the hunt goes on from there.
        """
        self.directory.claim(self.caller.channel_id, self)
        for leg in self.legs:
            self.directory.claim(leg.channel_id, self)
        if self.state is not CallState.RINGING:
            self._note("adopted after restart: still bridged")
            log.info("call adopted", bridge=self.bridge_id)
            if self.winner is not None:
                self._arm_max_duration(self.winner)  # counted from its answer, before the restart
            self.deliver(Resync())  # it may have ended between our check and now
            return
        assert isinstance(self.plan, RingPlan)
        left = self._route_time_left()
        self._note(f"adopted after restart: still ringing, {max(0.0, left):.1f} s of route left")
        log.info("ringing call adopted", route_time_left=round(left, 1))
        if left <= 0:
            self._timed_out = True  # ran out while nobody listened: legs rang out, no answer
        self._arm("route_timeout", max(0.0, left))
        for leg in self.legs:
            if leg.state is LegState.RINGING:
                self._arm_ring_time(leg, leg.plan.ring_time)
        await self._resync()
        if self.plan.strategy is RingStrategy.RINGALL and not self._timed_out:
            # Every ringall leg's turn came at the start: one still waiting was never created
            # (its row lost with the last CDR batch), so it rings now, with the others.
            unrung = [leg for leg in self.legs if leg.state is LegState.WAITING]
            if self.state is CallState.RINGING and unrung:
                await asyncio.gather(*(self._start_leg(leg) for leg in unrung))
        await self._check_progress()

    async def _reject(self, plan: Reject) -> None:
        self.record.disposition = Disposition.REJECTED
        self.cdr.record_call(self.record)
        self._note(f"rejected: {plan.message} (hangup: {plan.reason})")
        log.warning("call rejected", reason=str(plan.why), caller=plan.caller_number)
        self.state = CallState.ENDING
        await self._hangup(self.caller.channel_id, reason=plan.reason)
        self._arm("end_grace", END_GRACE_SECONDS)

    async def _caller_request(self, request: Awaitable[None]) -> bool:
        """Run a request on the caller's channel; False (and end) if the caller is gone."""
        error = await self._try_caller_request(request)
        if error is not None:
            await self._caller_already_gone(error)
            return False
        return True

    @staticmethod
    async def _try_caller_request(request: Awaitable[None]) -> AriError | None:
        """Run a request on the caller's channel; the error if the caller is already gone."""
        try:
            await request
        except (AriNotFound, AriConflict, AriUnprocessable) as exc:
            return exc
        return None

    async def _caller_already_gone(self, error: AriError) -> None:
        # The caller hung up while we were deciding: an expected race, not an error.
        log.info("caller already gone", status=error.status, message=error.message)
        # Legs stop ringing now; the CDR waits (briefly) for the ChannelDestroyed and its cause.
        self._expect_destroyed(self.caller.channel_id)
        await self._caller_gone(None)

    # ------------------------------------------------------------------ legs

    async def _start_leg(self, leg: Leg) -> None:
        barred = leg_refusal(leg.plan)  # the last check before anything reaches Asterisk
        if barred is not None:
            leg.state, leg.note, leg.destroyed = LegState.ENDED, f"barred: {barred}", True
            leg.cause = BARRED_CAUSE
            leg.record.started_at = self.clock.now()
            self._end_leg_record(leg, BARRED_CAUSE)
            self._note(f"{leg.plan.target}: not rung, barred: {barred}")
            log.warning("leg_barred", target=leg.plan.target, trunk=leg.plan.trunk, why=barred)
            return
        trunk = leg.plan.trunk
        if trunk is not None and not self.directory.take_trunk_slot(trunk):
            leg.state, leg.note = LegState.ENDED, f"trunk {trunk} at capacity"
            leg.destroyed = True
            self._end_leg_record(leg, None)
            self._note(f"{leg.plan.target}: not rung, trunk {trunk} at its maximum of legs")
            log.warning("trunk at capacity: leg not placed", trunk=trunk, target=leg.plan.target)
            return
        leg.slot = trunk is not None
        leg.state = LegState.CREATING
        leg.record.started_at = self.clock.now()
        self.cdr.record_leg(leg.record)
        self.directory.claim(leg.channel_id, self)
        variables = caller_id_variables(leg.plan)
        try:
            await self.ari.create_channel(
                leg.plan.dial_string,
                originator=self.caller.channel_id,
                channel_id=leg.channel_id,
                app_args=("pbxd-leg", self.call_id),
                variables=variables,
            )
        except AriError as exc:
            # Offline or unknown endpoint: Asterisk answers 500 "Allocation failed".
            leg.state, leg.note = LegState.ENDED, f"unreachable: {exc.message}"
            leg.destroyed = True
            self._end_leg_record(leg, None)
            self._free_slot(leg)
            self._note(f"{leg.plan.target}: unreachable ({exc.status} {exc.message})")
            log.info(
                "leg could not be created",
                target=leg.plan.target,
                status=exc.status,
                message=exc.message,
            )
            return
        self._note(f"{leg.plan.target}: calling {leg.plan.dial_string}")
        # Dialled once its StasisStart arrives: real Asterisk answers 409 before that.

    def _route_time_left(self) -> float:
        """Seconds before the route timeout (the whole route is bounded by it)."""
        assert isinstance(self.plan, RingPlan)
        return self.plan.timeout - (self.clock.monotonic() - self._started)

    async def _dial(self, leg: Leg) -> None:
        leg.state = LegState.DIALING
        # The target's own ring time, unless the route gives up sooner (a hunt leg started
        # late); rounded up so the route timer, not Asterisk, ends a leg at the timeout.
        ring_time = max(1, min(leg.plan.ring_time, math.ceil(self._route_time_left())))
        try:
            # No `caller`: Asterisk would copy the inbound caller ID over the leg's connected
            # line, which is what chan_pjsip sends in From, undoing the route's presentation.
            await self.ari.dial(leg.channel_id, timeout=ring_time)
        except AriError as exc:
            leg.note = f"dial refused: {exc.status} {exc.message}"
            log.info("dial refused", target=leg.plan.target, status=exc.status, message=exc.message)
            await self._hangup(leg.channel_id, reason=HangupReason.NORMAL)
            return
        self._arm_ring_time(leg, ring_time)

    def _arm_max_duration(self, leg: Leg) -> None:
        """Cut the answered leg (and the call) at its maximum duration, counted from its answer."""
        answered = leg.record.answered_at
        spent = (self.clock.now() - answered).total_seconds() if answered else 0.0
        self._arm("max_duration", max(0.0, leg.plan.max_duration - spent), leg.channel_id)

    def _arm_ring_time(self, leg: Leg, ring_time: float) -> None:
        """Our backstop for Asterisk's dial timeout: the leg is hung up if that never comes."""
        self._arm(f"ring_time:{leg.channel_id}", ring_time + RING_BACKSTOP_SECONDS, leg.channel_id)

    def _leg(self, channel_id: str) -> Leg | None:
        for leg in self.legs:
            if leg.channel_id == channel_id:
                return leg
        return None

    async def _leg_answered(self, leg: Leg, at: datetime | None = None) -> None:
        if leg.state in (LegState.ANSWERED, LegState.ENDING, LegState.ENDED):
            return
        if self.winner is not None or self.state is not CallState.RINGING:
            # Answered a moment after another leg, or after the caller left.
            await self._hangup(leg.channel_id, reason_code=ANSWERED_ELSEWHERE)
            leg.state = LegState.ENDING
            return
        leg.state = LegState.ANSWERED
        self.winner = leg
        self.state = CallState.ANSWERING
        leg.record.answered_at = at or self.clock.now()
        self.cdr.record_leg(leg.record)
        self._cancel_timers()
        self._arm_max_duration(leg)
        self._note(f"{leg.plan.target}: answered")
        log.info("answered", target=leg.plan.target)
        others = [other for other in self.legs if other is not leg and other.live]
        for other in others:
            other.state = LegState.ENDING
        await asyncio.gather(
            *(self._hangup(o.channel_id, reason_code=ANSWERED_ELSEWHERE) for o in others)
        )
        for other in self.legs:
            if other.state is LegState.WAITING:
                other.state, other.note = LegState.ENDED, "not rung: answered before its turn"
                other.destroyed = True
        if not await self._caller_request(self.ari.answer(self.caller.channel_id)):
            return
        self.record.answered_at = self.clock.now()
        self.record.answered_by = leg.plan.target
        self.cdr.record_call(self.record)
        try:
            bridge = await self.ari.create_bridge(
                bridge_type="mixing", bridge_id=f"{self.call_id}-bridge", name=f"pbxd {self.did}"
            )
            self.bridge_id = bridge.id
            await self.ari.add_channel(bridge.id, [self.caller.channel_id, leg.channel_id])
        except AriError as exc:
            log.warning("bridging failed", status=exc.status, message=exc.message)
            await self._end_everything(HangupReason.NORMAL)
            return
        self.state = CallState.BRIDGED
        self._note(f"bridged caller with {leg.plan.target}")

    async def _leg_gone(self, leg: Leg, cause: int | None, at: datetime | None = None) -> None:
        if leg.state is LegState.ENDED:
            return
        leg.cause = cause if cause is not None else leg.cause
        leg.state = LegState.ENDED
        self._end_leg_record(leg, leg.cause, at)
        self._free_slot(leg)
        self._disarm(f"ring_time:{leg.channel_id}")
        self._note(f"{leg.plan.target}: ended (cause {leg.cause})")
        if leg is self.winner:
            if self.state in (CallState.BRIDGED, CallState.ANSWERING):
                self._note("callee hung up")
                await self._end_everything(HangupReason.NORMAL)
            await self._maybe_finish()
            return
        if self.state is CallState.RINGING:
            await self._check_progress()
        else:
            await self._maybe_finish()

    def _end_leg_record(self, leg: Leg, cause: int | None, at: datetime | None = None) -> None:
        leg.record.ended_at = at or self.clock.now()
        leg.record.hangup_cause = cause
        self.cdr.record_leg(leg.record)

    def _free_slot(self, leg: Leg) -> None:
        if leg.slot and leg.plan.trunk is not None:
            leg.slot = False
            self.directory.give_trunk_slot(leg.plan.trunk)

    async def _check_progress(self) -> None:
        """While ringing: start the next hunt leg, or give up when no leg is left."""
        if self.state is not CallState.RINGING:
            return
        if any(leg.live for leg in self.legs):
            return
        waiting = [leg for leg in self.legs if leg.state is LegState.WAITING]
        if waiting and not self._timed_out and self._route_time_left() <= 0:
            self._timed_out = True  # the route timer is due: no time left for the next turn
        if waiting and not self._timed_out:
            await self._start_leg(waiting[0])
            await self._check_progress()
            return
        await self._give_up()

    async def _give_up(self) -> None:
        assert isinstance(self.plan, RingPlan)
        causes = [
            leg.cause
            for leg in self.legs
            if leg.state is LegState.ENDED and not leg.note.startswith("not rung: answered")
        ]
        disposition, reason = unanswered_outcome(
            causes, self._timed_out, self.plan.no_answer_reason
        )
        self.record.disposition = disposition
        self._note(f"nobody answered: {disposition} (hangup: {reason})")
        log.info("call not answered", disposition=str(disposition), reason=str(reason))
        await self._end_everything(reason)

    # ------------------------------------------------------------------ ending

    async def _end_everything(
        self, caller_reason: HangupReason, *, cause: int | None = None
    ) -> None:
        """Hang up every live channel and the bridge; the call ends when all are gone.

        `cause`: a Q.850 cause for every channel instead of the reasons (`reason_code`).
        """
        if self.state in (CallState.ENDING, CallState.ENDED):
            return
        self.state = CallState.ENDING
        self._cancel_timers()
        for leg in self.legs:
            if leg.state is LegState.WAITING:
                leg.state, leg.destroyed = LegState.ENDED, True
        live = [leg for leg in self.legs if leg.live and leg.state is not LegState.ENDING]
        for leg in live:
            leg.state = LegState.ENDING
        reason_of_legs = HangupReason.NO_ANSWER if self._timed_out else HangupReason.NORMAL
        legs_reason, reason = (None, None) if cause else (reason_of_legs, caller_reason)
        await asyncio.gather(
            *(self._hangup(leg.channel_id, reason=legs_reason, reason_code=cause) for leg in live),
            *(
                []
                if self.caller.gone
                else [self._hangup(self.caller.channel_id, reason=reason, reason_code=cause)]
            ),
        )
        await self._destroy_bridge()
        self._arm("end_grace", END_GRACE_SECONDS)
        await self._maybe_finish()

    async def _destroy_bridge(self) -> None:
        if self.bridge_id is None:
            return
        bridge_id, self.bridge_id = self.bridge_id, None
        with contextlib.suppress(AriNotFound):  # already gone with its last channel
            await self.ari.destroy_bridge(bridge_id)

    async def _hangup(
        self,
        channel_id: str,
        *,
        reason: HangupReason | None = None,
        reason_code: int | None = None,
    ) -> None:
        if channel_id == self.caller.channel_id and reason is not None:
            self._caller_reason = reason
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
        if self.caller.gone:
            return
        self.caller.gone = True
        self.caller.cause = cause if cause is not None else self.caller.cause
        self.record.ended_at = at or self.clock.now()
        self.record.hangup_cause = self.caller.cause
        if self.state in (CallState.RINGING, CallState.ANSWERING) and not self.record.answered_at:
            self.record.disposition = Disposition.ABANDONED
            self._note(f"caller hung up while ringing (cause {self.caller.cause})")
            log.info("caller abandoned", cause=self.caller.cause)
        elif self.state in (CallState.BRIDGED, CallState.ANSWERING):
            self._note(f"caller hung up (cause {self.caller.cause})")
        if self.state not in (CallState.ENDING, CallState.ENDED):
            await self._end_everything(HangupReason.NORMAL)
        await self._maybe_finish()

    async def _maybe_finish(self) -> None:
        """End the call once Asterisk confirmed every one of its channels destroyed."""
        if self.state is not CallState.ENDING or not self.caller.destroyed:
            return
        if any(leg.live or not leg.destroyed for leg in self.legs):
            return
        await self._finish()

    async def _finish(self) -> None:
        await self._destroy_bridge()
        if self.record.ended_at is None:
            self.record.ended_at = self.clock.now()
        if self.record.hangup_cause is None:
            self.record.hangup_cause = self.caller.cause
        if self.record.disposition is None:
            self.record.disposition = (
                Disposition.ANSWERED if self.record.answered_at else Disposition.FAILED
            )
        if self.winner is not None and self.record.answered_at is not None:
            self.record.disposition = Disposition.ANSWERED
        self.cdr.record_call(self.record)
        self._cancel_timers()
        self.state = CallState.ENDED
        self._note(
            f"call ended: {self.record.disposition}, {self.record.duration} s, "
            f"billable {self.record.billsec} s"
        )
        log.info(
            "call ended",
            disposition=str(self.record.disposition),
            duration=self.record.duration,
            billsec=self.record.billsec,
            hangup_cause=self.record.hangup_cause,
        )

    async def _abort(self) -> None:
        """After an unexpected error: hang everything up, close the CDR, never strand a caller."""
        try:
            self.state = CallState.RINGING if self.state is CallState.STARTING else self.state
            if self.record.disposition is None and self.record.answered_at is None:
                self.record.disposition = Disposition.FAILED
            await self._end_everything(HangupReason.FAILURE)
        except Exception:
            log.exception("cleanup after failure also failed")
        for leg in self.legs:
            if leg.state is not LegState.ENDED:
                leg.state = LegState.ENDED
                self._end_leg_record(leg, leg.cause)
        self.caller.gone = self.caller.destroyed = True
        await self._finish()

    # ------------------------------------------------------------------ timers

    def _arm(self, name: str, seconds: float, leg: str = "") -> None:
        self._disarm(name)
        self._timers[name] = self.clock.call_later(
            seconds, lambda: self.deliver(Timer(name.partition(":")[0], leg))
        )

    def _disarm(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def _cancel_timers(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    # ------------------------------------------------------------------ dispatch

    async def _handle(self, item: QueueItem) -> None:
        if isinstance(item, Timer):
            await self._on_timer(item)
        elif isinstance(item, Resync):
            await self._resync()
        else:
            await self._on_event(item)

    async def _on_timer(self, timer: Timer) -> None:
        if timer.kind == "route_timeout" and self.state is CallState.RINGING:
            self._timed_out = True
            self._note("route timeout")
            await self._give_up()
        elif timer.kind == "ring_time":
            leg = self._leg(timer.leg)
            if leg is not None and leg.state in (LegState.DIALING, LegState.RINGING):
                self._note(f"{leg.plan.target}: ring time over")
                leg.state = LegState.ENDING
                await self._hangup(leg.channel_id, reason=HangupReason.NO_ANSWER)
        elif timer.kind == "max_duration":
            leg = self._leg(timer.leg)
            if leg is self.winner and self.state in (CallState.ANSWERING, CallState.BRIDGED):
                assert leg is not None
                self._note(f"{leg.plan.target}: maximum call duration reached, hanging up")
                log.warning(
                    "leg_max_duration",
                    target=leg.plan.target,
                    trunk=leg.plan.trunk,
                    max_duration=leg.plan.max_duration,
                )
                await self._end_everything(HangupReason.NORMAL, cause=MAX_DURATION_CAUSE)
        elif timer.kind == "vanished":
            self._vanish_checks.pop(timer.leg, None)
            await self._channel_vanished(timer.leg)
        elif timer.kind == "end_grace" and self.state is CallState.ENDING:
            # Asterisk never confirmed some hangups (e.g. events lost): close the books anyway.
            log.warning("ending without confirmation of every hangup")
            for leg in self.legs:
                if leg.state is not LegState.ENDED:
                    leg.state = LegState.ENDED
                    self._end_leg_record(leg, leg.cause)
                    self._free_slot(leg)
            if not self.caller.gone:
                await self._caller_gone(None)
            self.caller.destroyed = True
            await self._finish()

    async def _on_event(self, event: Event) -> None:
        if isinstance(event, Dial):
            leg = self._leg(event.peer.id)
            if leg is not None and event.dialstatus == "RINGING" and leg.state is LegState.DIALING:
                leg.state = LegState.RINGING
                self._note(f"{leg.plan.target}: ringing")
            elif leg is not None and event.dialstatus not in ("", "RINGING", "ANSWER"):
                leg.note = event.dialstatus.lower()
            return
        channel_id = event.channel_ids()[0] if event.channel_ids() else ""
        is_caller = channel_id == self.caller.channel_id
        leg = None if is_caller else self._leg(channel_id)
        if not is_caller and leg is None:
            return
        if isinstance(event, StasisStart):
            if leg is not None and leg.state is LegState.CREATING:
                await self._dial(leg)
        elif isinstance(event, ChannelStateChange):
            if leg is not None and event.channel.state == "Up":
                await self._leg_answered(leg, event.timestamp)
        elif isinstance(event, ChannelHangupRequest):
            # A soft request (our DELETE, a dial timeout) carries Asterisk's flag 32, not a
            # Q.850 cause: the real cause only comes with ChannelDestroyed.
            if event.soft or event.cause is None:
                return
            if is_caller:
                self.caller.cause = event.cause
            elif leg is not None:
                leg.cause = event.cause
        elif isinstance(event, ChannelDestroyed):
            if is_caller:
                self.caller.cause = event.cause
                self.caller.destroyed = True
                self.record.hangup_cause = event.cause
                await self._caller_gone(event.cause, event.timestamp)
            elif leg is not None:
                leg.cause = event.cause
                leg.destroyed = True
                if leg.state is LegState.ENDED:
                    leg.record.hangup_cause = event.cause
                    self.cdr.record_leg(leg.record)
                else:
                    await self._leg_gone(leg, event.cause, event.timestamp)
            await self._maybe_finish()
        elif isinstance(event, StasisEnd) and is_caller:
            # A leg is judged on its ChannelDestroyed, which follows at once with its cause;
            # the caller's departure is acted on now so legs stop ringing without delay.
            await self._caller_gone(None, event.timestamp)

    async def _resync(self) -> None:
        """After a reconnection: events may have been lost, so ask Asterisk what still exists."""
        channels = [] if self.caller.gone else [self.caller.channel_id]
        channels += [leg.channel_id for leg in self.legs if leg.live]
        for channel_id in channels:
            try:
                channel = await self.ari.get_channel(channel_id)
            except AriNotFound:
                self._expect_destroyed(channel_id)
                continue
            except AriError as exc:
                log.warning("resync failed", channel=channel_id, status=exc.status)
                continue
            leg = self._leg(channel_id)
            if leg is not None and channel.state == "Up" and self.winner is None:
                await self._leg_answered(leg)

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
            if self.caller.destroyed:
                return
            self._note(f"channel {channel_id} vanished while events were not received")
            self.caller.destroyed = True
            # Gone because we hung it up: its cause is the one our reason gives.
            if self.caller.cause is None and self._caller_reason is not None:
                self.caller.cause = CAUSE_OF_REASON[self._caller_reason]
                self.record.hangup_cause = self.caller.cause
            await self._caller_gone(None)
        else:
            leg = self._leg(channel_id)
            if leg is None or leg.destroyed:
                return
            self._note(f"channel {channel_id} vanished while events were not received")
            leg.destroyed = True
            await self._leg_gone(leg, None)
        await self._maybe_finish()


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


def cause_of(reason: HangupReason) -> int:
    """The Q.850 cause Asterisk gives a channel hung up with `reason`."""
    return CAUSE_OF_REASON[reason]


def _adopted(
    record: CallRecord,
    plan: RingPlan,
    state: CallState,
    ari: AriClient,
    cdr: CdrSink,
    clock: Clock,
    directory: ChannelDirectory,
) -> CallController:
    """A controller taking back, in `state`, a call a previous run left on Asterisk."""
    return CallController(
        call_id=record.call_id,
        plan=plan,
        record=record,
        ari=ari,
        cdr=cdr,
        clock=clock,
        directory=directory,
        state=state,
        adopted=True,
    )


def adopt_bridged_call(
    record: CallRecord,
    leg_record: LegRecord,
    bridge_id: str,
    *,
    ari: AriClient,
    cdr: CdrSink,
    clock: Clock,
    directory: ChannelDirectory,
    trunk: str | None = None,
    max_duration: int = DEFAULT_MAX_CALL_DURATION,
) -> CallController:
    """A controller for a call found bridged after a restart; it completes the CDR.

    `trunk`: the trunk whose slot the leg holds (counted by the daemon), freed at its end.
    `max_duration`: the leg's limit, counted from its answer before the restart.
    """
    leg_plan = LegPlan(
        target=leg_record.target,
        dial_string=leg_record.destination,
        trunk=trunk,
        start_after=0,
        ring_time=1,
        caller_id_number=record.caller_number or "",
        caller_id_name=record.caller_name or "",
        max_duration=max_duration,
    )
    plan = RingPlan(
        did=record.did,
        trunk=record.trunk,
        route=record.route or "",
        strategy=RingStrategy(record.strategy or RingStrategy.RINGALL),
        legs=(),
        timeout=1,
        no_answer_reason=HangupReason.NO_ANSWER,
        caller_number=record.caller_number or "",
        caller_name=record.caller_name or "",
    )
    controller = _adopted(record, plan, CallState.BRIDGED, ari, cdr, clock, directory)
    controller.bridge_id = bridge_id
    leg = Leg(
        plan=leg_plan,
        channel_id=leg_record.leg_id,
        record=leg_record,
        state=LegState.ANSWERED,
        slot=trunk is not None,
    )
    controller.legs.append(leg)
    controller.winner = leg
    return controller


@dataclass(frozen=True, slots=True)
class FoundLeg:
    """What a restart knows of one planned leg: its CDR row (if written), its channel state."""

    record: LegRecord | None
    channel_state: str | None  # None: no such channel on Asterisk (any more)


def adopt_ringing_call(
    record: CallRecord,
    plan: RingPlan,
    found: dict[str, FoundLeg],
    elapsed: float,
    *,
    ari: AriClient,
    cdr: CdrSink,
    clock: Clock,
    directory: ChannelDirectory,
) -> CallController:
    """A controller for a call found still ringing after a restart.

    `found` maps each planned leg's channel id (`<call id>-<n>`) to what is known of it;
    `elapsed` is how long the route has been ringing. Legs with a channel on Asterisk hold
    their trunk slot again (even above the maximum: the channel exists).
    """
    controller = _adopted(record, plan, CallState.RINGING, ari, cdr, clock, directory)
    controller._started = clock.monotonic() - elapsed
    for leg in controller.legs:
        seen = found.get(leg.channel_id, FoundLeg(None, None))
        if seen.record is not None:
            leg.record = seen.record
        if seen.channel_state is None:
            if seen.record is not None:  # it had a channel, gone while nobody listened
                leg.state, leg.destroyed = LegState.ENDED, True
                leg.cause = seen.record.hangup_cause
            continue  # else: its turn has not come yet
        # Down may mean dialled, not ringing yet: never dial twice; Asterisk's dial timeout
        # or our ring-time backstop ends a leg that was not dialled after all.
        leg.state = LegState.RINGING
        if leg.plan.trunk is not None:
            directory.hold_trunk_slot(leg.plan.trunk)
            leg.slot = True
    return controller
