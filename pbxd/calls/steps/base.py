"""The shape every step handler has: `enter`, the events it takes, and what it returns.

A handler runs one step of a call's flow on its session. Each method returns the step's
outcome when the step is over (the flow then goes to the step that outcome leads to), or
None while the step goes on. Handlers decide; the session acts on Asterisk.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from pbxd.ari import Event
from pbxd.dialplan.flow import Step, StepName, StepOutcome

if TYPE_CHECKING:
    from pbxd.calls.session import CallSession, Leg

StepT = TypeVar("StepT", bound=Step)


class StepHandler(Generic[StepT]):
    """Runs one step; the defaults ignore what the step does not care about."""

    def __init__(self, step: StepT, session: CallSession) -> None:
        self.step = step
        self.session = session

    async def enter(self) -> StepOutcome | None:
        """Start the step."""
        raise NotImplementedError

    def next_step(self, outcome: StepOutcome) -> StepName | None:
        """The step the flow goes to after `outcome` (None: the call ends)."""
        return self.step.exits().get(outcome)

    def path_label(self, outcome: StepOutcome) -> str | None:
        """What the call log shows beside the step's outcome (keys, a branch), if anything."""
        return None

    async def resume(self) -> StepOutcome | None:
        """Go on with the step after a restart (its state rebuilt by the daemon)."""
        return None

    async def on_leg_in_stasis(self, leg: Leg) -> StepOutcome | None:
        """A leg this step created entered Stasis (it may be dialled now)."""
        return None

    async def on_leg_answered(self, leg: Leg, at: datetime) -> StepOutcome | None:
        """A leg answered at `at`."""
        return None

    async def on_leg_ended(self, leg: Leg) -> StepOutcome | None:
        """A leg is gone (its state is ENDED, with its cause)."""
        return None

    async def on_timer(self, name: str, key: str) -> StepOutcome | None:
        """A timer the step armed fired."""
        return None

    async def on_caller_gone(self) -> StepOutcome | None:
        """The caller hung up during the step; the session then ends the call."""
        return StepOutcome.ABANDONED

    async def on_event(self, event: Event) -> StepOutcome | None:
        """Any other ARI event about the call's channels (playbacks, recordings, keys)."""
        return None
