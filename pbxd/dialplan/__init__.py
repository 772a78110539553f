"""Routing decisions as pure functions: call facts + configuration -> a flow (or a reject)."""

from pbxd.dialplan.flow import (
    Flow,
    GotoStep,
    HangupStep,
    LegPlan,
    Mailbox,
    PlayStep,
    RingStep,
    ScheduleStep,
    Step,
    StepKind,
    StepOutcome,
    VoicemailStep,
)
from pbxd.dialplan.plan import (
    CallFacts,
    Decision,
    Reject,
    RejectWhy,
    endpoint_of_channel,
    plan_call,
)
from pbxd.dialplan.presentation import Presentation, presentation_of_stasis_args

__all__ = [
    "CallFacts",
    "Decision",
    "Flow",
    "GotoStep",
    "HangupStep",
    "LegPlan",
    "Mailbox",
    "PlayStep",
    "Presentation",
    "Reject",
    "RejectWhy",
    "RingStep",
    "ScheduleStep",
    "Step",
    "StepKind",
    "StepOutcome",
    "VoicemailStep",
    "endpoint_of_channel",
    "plan_call",
    "presentation_of_stasis_args",
]
