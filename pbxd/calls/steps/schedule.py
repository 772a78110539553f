"""The schedule step: open or closed, by the number's opening hours, now."""

from __future__ import annotations

from pbxd.calls.steps.base import StepHandler
from pbxd.dialplan.flow import ScheduleStep, StepOutcome


class ScheduleHandler(StepHandler[ScheduleStep]):
    """Branch at once on the hours, read at the session's clock (never a wall clock)."""

    async def enter(self) -> StepOutcome | None:
        """Open or closed at this instant (the hours know the number's time zone)."""
        is_open = self.step.hours.is_open(self.session.clock.now())
        self.session.note("open" if is_open else "closed")
        return StepOutcome.OPEN if is_open else StepOutcome.CLOSED
