"""Step handlers: one module per kind of step, all with the shape of `base.StepHandler`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pbxd.calls.steps.base import StepHandler
from pbxd.calls.steps.call_through import CallThroughHandler
from pbxd.calls.steps.goto import GotoHandler
from pbxd.calls.steps.hangup import HangupHandler
from pbxd.calls.steps.menu import MenuHandler
from pbxd.calls.steps.play import PlayHandler
from pbxd.calls.steps.ring import RingHandler
from pbxd.calls.steps.schedule import ScheduleHandler
from pbxd.calls.steps.voicemail import VoicemailHandler
from pbxd.dialplan.flow import Step, StepKind

if TYPE_CHECKING:
    from pbxd.calls.session import CallSession

HANDLERS: dict[StepKind, type[StepHandler[Any]]] = {
    StepKind.RING: RingHandler,
    StepKind.HANGUP: HangupHandler,
    StepKind.GOTO: GotoHandler,
    StepKind.PLAY: PlayHandler,
    StepKind.SCHEDULE: ScheduleHandler,
    StepKind.VOICEMAIL: VoicemailHandler,
    StepKind.MENU: MenuHandler,
    StepKind.CALL_THROUGH: CallThroughHandler,
}


class UnsupportedStep(RuntimeError):
    """A flow holds a kind of step this version cannot run."""


def handler_for(step: Step, session: CallSession) -> StepHandler[Any]:
    """The handler running `step` on `session`."""
    cls = HANDLERS.get(step.kind)
    if cls is None:
        raise UnsupportedStep(f"no handler for {step.kind} steps")
    return cls(step, session)


__all__ = ["HANDLERS", "StepHandler", "UnsupportedStep", "handler_for"]
