"""The ring step: ring the step's legs with its strategy; bridge the first to answer.

The strategy (`pbxd.calls.strategies`) says which legs start when; this handler keeps the
step's timeout, each leg's ring time (a hunt leg's is cut by what is left of the step), and
decides how the step ends: answered (the call stays in its bridge), or no answer, busy,
unavailable (`pbxd.dialplan.outcome.ring_outcome`), each leading to the step the flow says.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from pbxd.ari import AriError, ChannelDtmfReceived, Event, PlaybackFinished
from pbxd.calls import ids
from pbxd.calls.journal import LegEnd, LegScreened
from pbxd.calls.states import CallState, LegState
from pbxd.calls.steps.base import StepHandler
from pbxd.calls.steps.screening import (
    ACCEPTED,
    ASKED_AGAIN,
    SCREEN_TIMER,
    SCREENING_VARIABLE,
    LegScreening,
    Verdict,
)
from pbxd.calls.strategies import NO_STANDING, LegTurn, RingAll, strategy_of
from pbxd.dialplan.flow import RingStep, StepOutcome
from pbxd.dialplan.outcome import ANSWERED_ELSEWHERE, ring_outcome
from pbxd.ivr.menu import Action, CancelWait, Key, Play, PromptDone, StopPrompt, TimerFired, Wait
from pbxd.vocabulary import HangupReason

if TYPE_CHECKING:
    from pbxd.calls.session import CallSession, Leg

log = structlog.get_logger("pbxd.calls")

# Asterisk's dial timeout ends a ringing leg; ours is the backstop if that never comes.
RING_BACKSTOP_SECONDS = 2.0
TIMEOUT_TIMER = "step_timeout"
STAGE_TIMER = "step_stage"  # the next staggered stage is due


class RingHandler(StepHandler[RingStep]):
    """Rings the legs of one ring step."""

    def __init__(self, step: RingStep, session: CallSession) -> None:
        super().__init__(step, session)
        self.rule = strategy_of(step.strategy)
        self.legs: list[Leg] = []
        self.timed_out = False
        self.started = 0.0  # clock.monotonic() when the step started ringing
        self.screenings: dict[str, LegScreening] = {}  # answered legs not yet accepted
        # Adopted: legs found answered while screened, with the verdict the journal has.
        self.found_screened: dict[str, str | None] = {}

    # ------------------------------------------------------------------ entering

    async def enter(self) -> StepOutcome | None:
        """Indicate ringing to the caller while the first legs are created."""
        session = self.session
        session.to(CallState.RINGING)
        step = self.step
        roster = session.roster
        pending: list[Awaitable[AriError | None]] = [session.ring_caller()]
        standing = NO_STANDING
        if self.rule.recalls:
            # The strategy's memory is read while the caller's ringing is indicated.
            ring_error, standing = await asyncio.gather(
                pending.pop(),
                roster.standing(
                    self.rule.recalls, step, session.flow_timezone, session.clock.now()
                ),
            )
            if ring_error is not None:
                await session.caller_already_gone(ring_error)
                return None
        self.legs = session.add_legs(step, self.rule.arrange(step.legs, standing, roster.rng))
        self.started = session.clock.monotonic()
        session.note(f"ring ({step.strategy}, timeout {step.timeout} s)")
        session.arm(TIMEOUT_TIMER, step.timeout)
        first = self._picks()
        # No round trip before the first dial. A caller gone meanwhile is handled once every
        # create has answered, so no leg is left half-made.
        results = await asyncio.gather(*pending, *(self._start(leg) for leg in first))
        ring_error = results[0] if pending else None
        if ring_error is not None:
            await session.caller_already_gone(ring_error)
            return None
        return await self._progress()

    @classmethod
    def adopt(
        cls,
        step: RingStep,
        session: CallSession,
        legs: list[Leg],
        elapsed: float,
        screened: Mapping[str, str | None] | None = None,
    ) -> RingHandler:
        """The handler of a ring step a previous run left ringing `elapsed` seconds ago;
        `screened`: its legs found answered while screened, each with the journal's verdict
        (None: none journaled)."""
        handler = cls(step, session)
        handler.legs = legs
        handler.started = session.clock.monotonic() - elapsed
        handler.found_screened = dict(screened or {})
        return handler

    async def resume(self) -> StepOutcome | None:
        """After a restart: what is left of the timeout; catch up with Asterisk; go on."""
        session = self.session
        left = self.time_left()
        session.note(f"adopted after restart: still ringing, {max(0.0, left):.1f} s of route left")
        log.info("ringing call adopted", route_time_left=round(left, 1))
        if left <= 0:
            self.timed_out = True  # ran out while nobody listened: legs rang out, no answer
        session.arm(TIMEOUT_TIMER, max(0.0, left))
        screened = [leg for leg in self.legs if leg.channel_id in self.found_screened]
        for leg in self.legs:
            if leg in screened and leg.state is LegState.RINGING:
                session.mark_answered(leg, session.clock.now())  # answered while we were away
            elif leg.state is LegState.RINGING:
                self._arm_ring_time(leg, leg.plan.ring_time)
        await session.resync()
        if session.handler is not self:
            return None  # answered (or ended) during the resync
        for leg in screened:
            if leg.state is LegState.ANSWERED and session.handler is self:
                outcome = await self._screen_found(leg, self.found_screened[leg.channel_id])
                if outcome is not None:
                    return outcome
        if session.handler is not self or session.state is not CallState.RINGING:
            return None
        if isinstance(self.rule, RingAll) and not self.timed_out:
            # Every ringall leg's turn came at the start: one still waiting was never created
            # (lost with the last CDR batch), so it rings now, with the others.
            unrung = [leg for leg in self.legs if leg.state is LegState.WAITING]
            if session.state is CallState.RINGING and unrung:
                await asyncio.gather(*(session.start_leg(leg) for leg in unrung))
        return await self._progress()

    # ------------------------------------------------------------------ events

    async def on_leg_in_stasis(self, leg: Leg) -> StepOutcome | None:
        """Dial it: its own ring time, unless the step gives up sooner (a late hunt leg)."""
        # Rounded up so the step's timer, not Asterisk, ends a leg at the timeout.
        ring_time = max(1, min(leg.plan.ring_time, math.ceil(self.time_left())))
        if self.step.early_media:
            await self.session.bridge_early(leg)
        if await self.session.dial(leg, ring_time):
            self._arm_ring_time(leg, ring_time)
        return None

    async def on_leg_answered(self, leg: Leg, at: datetime) -> StepOutcome | None:
        """The first leg to answer wins (the others are answered elsewhere, cause 26), unless
        it is screened first: a whisper, or confirm calls (`screening`)."""
        self.session.mark_answered(leg, at)
        if leg.plan.whisper or leg.plan.confirm:
            screening = LegScreening(leg.plan.whisper, leg.plan.confirm)
            self.screenings[leg.channel_id] = screening
            kind = "confirm" if leg.plan.confirm else "whisper"
            self.session.note(f"{leg.plan.target}: answered, {kind} before bridging")
            return await self._screen(leg, screening, screening.start())
        return await self._won(leg, at)

    async def _screen_found(self, leg: Leg, verdict: str | None) -> StepOutcome | None:
        """After a restart, a leg found answered while screened: put through if it accepted
        (the journal says so, else the leg's channel variable), put down if it refused, else
        its screening goes on: the prompt still playing, or asked once more (`screening`)."""
        session = self.session
        target = leg.plan.target
        mark = await session.leg_variable(leg, SCREENING_VARIABLE) if verdict is None else None
        if verdict == Verdict.ACCEPTED or mark == ACCEPTED:
            if verdict is None:  # the journal's last batch was lost; Asterisk kept the verdict
                now = session.clock.now()
                session.journal.add(LegScreened(now, leg.channel_id, str(Verdict.ACCEPTED)))
            await asyncio.gather(
                *(session.stop_playback(p) for p in ids.screening_playback_ids(leg.channel_id))
            )
            session.note(f"{target}: accepted before the restart, put through")
            return await self._won(leg, None)
        if verdict is not None:  # refused before the restart: its hangup was never confirmed
            await session.hang_up_legs([leg], reason=HangupReason.NORMAL)
            return None
        if self.timed_out:
            return None  # the step gives up: it is hung up with the others
        screening = LegScreening(leg.plan.whisper, leg.plan.confirm)
        self.screenings[leg.channel_id] = screening
        actions = screening.start()
        for playback in ids.screening_playback_ids(leg.channel_id):
            if await session.playback_plays(playback):
                screening.playback = playback  # still hearing it: its end comes to us
                session.note(f"{target}: adopted after restart, still hearing the prompt")
                return None
        if not screening.confirm:
            return await self._screen(leg, screening, Verdict.ACCEPTED)  # heard its whisper
        if mark == ASKED_AGAIN:
            session.note(f"{target}: asked again before, waiting for the key")
            return await self._screen(leg, screening, screening.feed(PromptDone()))
        await session.set_leg_variable(leg, SCREENING_VARIABLE, ASKED_AGAIN)
        session.note(f"{target}: asked again after the restart")
        log.info("leg_screened_again", target=target)
        return await self._screen(leg, screening, actions)

    async def _won(self, leg: Leg, at: datetime | None) -> StepOutcome | None:
        """`leg` takes the call: the others are hung up, the caller answered and bridged."""
        session = self.session
        for channel in self.screenings:
            deciding = session.leg(channel)
            if deciding is not None and deciding is not leg:
                session.note(f"{deciding.plan.target}: never accepted, answered elsewhere")
        self.screenings.clear()
        session.roster.answered(leg.plan.target, at or session.clock.now(), session.flow_timezone)
        session.cancel_timers()
        session.arm_max_duration(leg)
        others = [
            o for o in self.legs if o is not leg and o.live and o.state is not LegState.ENDING
        ]
        await session.hang_up_legs(others, reason_code=ANSWERED_ELSEWHERE)
        session.drop_waiting(self.legs)
        if not await session.connect(leg, at):
            return None
        return StepOutcome.ANSWERED

    async def on_leg_ended(self, leg: Leg) -> StepOutcome | None:
        """A leg of this step is gone: start the next one, or give up."""
        if leg not in self.legs:
            return None
        if self.screenings.pop(leg.channel_id, None) is not None:
            self.session.note(f"{leg.plan.target}: hung up before accepting")
        return await self._progress()

    async def on_event(self, event: Event) -> StepOutcome | None:
        """A screened callee's key, or the end of their prompt."""
        if isinstance(event, ChannelDtmfReceived):
            channel = event.channel.id
            screening = self.screenings.get(channel)
            leg = self.session.leg(channel)
            if screening is None or leg is None:
                return None
            return await self._screen(leg, screening, screening.feed(Key(event.digit)))
        if isinstance(event, PlaybackFinished):
            for channel, screening in list(self.screenings.items()):
                leg = self.session.leg(channel)
                if screening.playback == event.playback.id and leg is not None:
                    screening.playback = None
                    return await self._screen(leg, screening, screening.feed(PromptDone()))
        return None

    async def _screen(
        self, leg: Leg, screening: LegScreening, actions: tuple[Action, ...] | Verdict
    ) -> StepOutcome | None:
        """Carry out a screening's actions, or act on its verdict."""
        session = self.session
        timer = f"{SCREEN_TIMER}:{leg.channel_id}"
        if isinstance(actions, Verdict):
            del self.screenings[leg.channel_id]
            session.disarm(timer)
            session.journal.add(LegScreened(session.clock.now(), leg.channel_id, str(actions)))
            if actions is Verdict.ACCEPTED:
                # Kept by Asterisk with the leg: a restart from here on puts the call through
                # (even if the journal's last batch is lost).
                await session.set_leg_variable(leg, SCREENING_VARIABLE, ACCEPTED)
            if screening.playback is not None:
                playing, screening.playback = screening.playback, None
                await session.stop_playback(playing)
            log.info("leg_screened", target=leg.plan.target, verdict=str(actions))
            if actions is Verdict.ACCEPTED:
                session.note(f"{leg.plan.target}: accepted the call")
                return await self._won(leg, None)
            session.note(f"{leg.plan.target}: not accepted ({actions}), the others ring on")
            await session.hang_up_legs([leg], reason=HangupReason.NORMAL)
            return None
        for action in actions:
            if isinstance(action, Play):
                playback = ids.screening_playback_id(leg.channel_id, again=session.adopted)
                screening.playback = await session.play_to_leg(leg, screening.prompts, playback)
            elif isinstance(action, StopPrompt) and screening.playback is not None:
                playing, screening.playback = screening.playback, None
                await session.stop_playback(playing)
            elif isinstance(action, Wait):
                session.arm(timer, action.seconds, leg.channel_id)
            elif isinstance(action, CancelWait):
                session.disarm(timer)
        return None

    async def on_timer(self, name: str, key: str) -> StepOutcome | None:
        """The step's timeout: whoever still rings is hung up, nobody answered. A stage's
        time (staggered): its legs start. A screened callee's wait: refused."""
        screening = self.screenings.get(key) if name == SCREEN_TIMER else None
        leg = self.session.leg(key)
        if screening is not None and leg is not None:
            return await self._screen(leg, screening, screening.feed(TimerFired()))
        if self.session.state is not CallState.RINGING:
            return None
        if name == STAGE_TIMER:
            return await self._progress()
        if name != TIMEOUT_TIMER:
            return None
        self.timed_out = True
        self.session.note("route timeout")
        return await self._give_up()

    async def on_caller_gone(self) -> StepOutcome | None:
        """The caller hung up: the step is abandoned unless a leg answered already."""
        return None if self.session.winner is not None else StepOutcome.ABANDONED

    # ------------------------------------------------------------------ decisions

    def time_left(self) -> float:
        """Seconds before the step's timeout (the whole step is bounded by it)."""
        return self.step.timeout - (self.session.clock.monotonic() - self.started)

    def _arm_ring_time(self, leg: Leg, ring_time: float) -> None:
        """Our backstop for Asterisk's dial timeout: the leg is hung up if that never comes."""
        self.session.arm(
            f"ring_time:{leg.channel_id}", ring_time + RING_BACKSTOP_SECONDS, leg.channel_id
        )

    def elapsed(self) -> float:
        """Seconds since the step started ringing."""
        return self.session.clock.monotonic() - self.started

    def _picks(self) -> list[Leg]:
        """The legs the strategy starts now, as many as `max_legs` leaves room for."""
        views = [LegTurn(leg.state, leg.turn, leg.plan.start_after) for leg in self.legs]
        picks = [self.legs[i] for i in self.rule.to_start(views, self.elapsed())]
        if self.step.max_legs is not None:
            room = self.step.max_legs - sum(1 for leg in self.legs if leg.live)
            picks = picks[: max(0, room)]
        return picks

    async def _start(self, leg: Leg) -> None:
        """Start a leg, or skip it at once (offline, do-not-disturb, on another call)."""
        session = self.session
        why = session.roster.skip(leg.plan, self.step)
        if why is not None:
            session.skip_leg(leg, why)
            return
        await session.start_leg(leg)

    def _arm_next_stage(self) -> None:
        """Wake up when the next staggered stage is due."""
        views = [LegTurn(leg.state, leg.turn, leg.plan.start_after) for leg in self.legs]
        elapsed = self.elapsed()
        due = self.rule.next_start(views, elapsed)
        if due is not None:
            self.session.arm(STAGE_TIMER, max(0.0, due - elapsed))

    async def _progress(self) -> StepOutcome | None:
        """While ringing: start the next legs the strategy names, or give up when none is left."""
        session = self.session
        while session.state is CallState.RINGING and session.handler is self:
            live = any(leg.live for leg in self.legs)
            waiting = any(leg.state is LegState.WAITING for leg in self.legs)
            if waiting and not self.timed_out and self.time_left() <= 0:
                self.timed_out = True  # the step's timer is due: no time left for the next turn
            if not waiting or self.timed_out:
                return None if live else await self._give_up()
            picks = self._picks()
            if not picks:
                if live:
                    self._arm_next_stage()
                    return None
                return await self._give_up()  # a strategy that starts nothing more
            for leg in picks:
                await self._start(leg)
        return None

    async def _give_up(self) -> StepOutcome:
        """Nobody answered: stop what still rings; the outcome picks the next step."""
        session = self.session
        causes = [
            leg.cause
            for leg in self.legs
            if leg.state is LegState.ENDED and leg.end is not LegEnd.NOT_RUNG
        ]
        outcome = ring_outcome(causes, self.timed_out)
        session.note(f"nobody answered: {outcome}")
        log.info("call not answered", outcome=str(outcome))
        session.drop_waiting(self.legs)
        self.screenings.clear()  # a callee still deciding is hung up with the rest
        live = [leg for leg in self.legs if leg.live and leg.state is not LegState.ENDING]
        reason = HangupReason.NO_ANSWER if self.timed_out else HangupReason.NORMAL
        await session.hang_up_legs(live, reason=reason)
        return outcome


def found_leg_states(
    legs: list[Leg], channel_states: Mapping[str, str | None], ended: Mapping[str, int | None]
) -> None:
    """Set adopted legs' states from what Asterisk and the journal say (see the daemon).

    `channel_states`: each leg's channel state on Asterisk (None: no such channel);
    `ended`: legs the journal or the CDR knows ended, with their cause.
    """
    for leg in legs:
        state = channel_states.get(leg.channel_id)
        if state is None:
            if leg.channel_id in ended:  # it had a channel, gone while nobody listened
                leg.state, leg.end = LegState.ENDED, LegEnd.HUNG_UP
                leg.cause = ended[leg.channel_id]
            continue  # else: its turn has not come yet
        # Down may mean dialled, not ringing yet: never dial twice; Asterisk's dial timeout
        # or our ring-time backstop ends a leg that was not dialled after all.
        leg.state = LegState.RINGING
