"""The goto step: go on at another step (the planner copied other routes in)."""

from __future__ import annotations

from pbxd.calls.steps.base import StepHandler
from pbxd.dialplan.flow import GotoStep, StepOutcome


class GotoHandler(StepHandler[GotoStep]):
    """Jump: nothing to ask Asterisk."""

    async def enter(self) -> StepOutcome | None:
        """Leave at once towards the target step."""
        self.session.note(f"go to {self.step.target}")
        return StepOutcome.JUMPED
