"""The hangup step: end the call with a reason the carrier understands."""

from __future__ import annotations

from pbxd.calls.steps.base import StepHandler
from pbxd.dialplan.flow import HangupStep, StepOutcome


class HangupHandler(StepHandler[HangupStep]):
    """Hang up the caller (and anything still up) with the step's reason."""

    async def enter(self) -> StepOutcome | None:
        """Hang up; the call ends when Asterisk confirms every channel gone."""
        causes = [leg.cause for leg in self.session.legs if leg.cause is not None]
        if self.step.leg_cause and causes:
            self.session.note(f"hangup: cause {causes[-1]}, as the far end gave it")
            await self.session.end_everything(self.step.reason, cause=causes[-1])
            return StepOutcome.HUNG_UP
        self.session.note(f"hangup: {self.step.reason}")
        await self.session.end_everything(self.step.reason)
        return StepOutcome.HUNG_UP
