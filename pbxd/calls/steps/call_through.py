"""The call-through step: a registered mobile calls out with the virtual number.

The user rings a pbxd access number from their mobile; the caller's number must be one an
`outbound:` entry lists under `mobiles:`. pbxd answers, plays a tone, takes the PIN then
`#`, plays the tone again, takes the destination then `#`. The destination follows the
rules of a softphone calling out (`pbxd.dialplan.outbound.call_through`): the user's
narrowing, the trunk's allowlist and denied destinations, emergency numbers always, the
plan of the number presented. What the user keys is never logged (a PIN is in it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog

from pbxd.ari import ChannelDtmfReceived, Event
from pbxd.calls.journal import CalledOut
from pbxd.calls.states import CallState
from pbxd.calls.steps.base import StepHandler
from pbxd.dialplan.flow import CallThroughStep, Flow, StepOutcome
from pbxd.dialplan.outbound import call_through

if TYPE_CHECKING:
    from pbxd.calls.session import CallSession

log = structlog.get_logger("pbxd.calls")

KEYS_TIMER = "step_keys"
MAX_KEYS = 32  # a PIN or a number: anything longer is a stuck key


class CallThroughHandler(StepHandler[CallThroughStep]):
    """Answers a registered mobile and takes its PIN and destination."""

    def __init__(self, step: CallThroughStep, session: CallSession) -> None:
        super().__init__(step, session)
        self.keys = ""
        self.pin: str | None = None  # once keyed

    async def enter(self) -> StepOutcome | None:
        """A mobile no entry lists is refused unanswered; else answer, tone, wait for keys."""
        session = self.session
        flow = session.flow
        assert isinstance(flow, Flow)
        if flow.caller_number not in self.step.users:
            session.note(f"call through: {flow.caller_number} is not a registered mobile")
            log.warning("call_through_refused", why="unknown mobile")
            return StepOutcome.REFUSED
        session.to(CallState.PLAYING)
        if not await session.answer_caller(None):
            return None
        session.note("call through: PIN then #")
        return await self._tone()

    async def _tone(self) -> StepOutcome | None:
        if await self.session.play(self.step.tone) is None:
            return None  # the caller is gone
        self.session.arm(KEYS_TIMER, self.step.timeout)
        return None

    async def on_event(self, event: Event) -> StepOutcome | None:
        """A key from the caller: `#` ends the PIN, then the destination."""
        session = self.session
        if not isinstance(event, ChannelDtmfReceived):
            return None
        if event.channel.id != session.caller.channel_id:
            return None
        if event.digit != "#":
            if len(self.keys) < MAX_KEYS:
                self.keys += event.digit
            session.arm(KEYS_TIMER, self.step.timeout)
            return None
        keyed, self.keys = self.keys, ""
        if self.pin is None:
            self.pin = keyed
            session.note("call through: destination then #")
            return await self._tone()
        return await self._go_out(keyed)

    async def _go_out(self, typed: str) -> StepOutcome | None:
        session = self.session
        flow = session.flow
        assert isinstance(flow, Flow) and self.pin is not None
        decision = call_through(flow, self.step, self.pin, typed)
        if isinstance(decision, str):
            session.note(f"call through refused: {decision}")
            log.warning("call_through_refused", why=decision.split(":")[0])
            return StepOutcome.REFUSED
        assert decision.call_out is not None
        out = decision.call_out
        session.flow = decision
        session.journal.add(
            CalledOut(session.clock.now(), decision.did, out.dialled, out.presented, out.emergency)
        )
        session.note(f"call through: {out.dialled}, presenting {out.presented}")
        if decision.limits is not None and not await session.plan_allows(decision):
            return StepOutcome.REFUSED
        return StepOutcome.CHOSEN

    async def on_timer(self, name: str, key: str) -> StepOutcome | None:
        """No key for too long: the call is refused."""
        if name != KEYS_TIMER:
            return None
        self.session.note("call through: no key in time")
        return StepOutcome.TIMEOUT
