"""Routing decisions as pure functions: call facts + configuration -> a plan."""

from pbxd.dialplan.plan import (
    CallFacts,
    Decision,
    LegPlan,
    Reject,
    RejectWhy,
    RingPlan,
    endpoint_of_channel,
    plan_call,
)
from pbxd.dialplan.presentation import Presentation, presentation_of_stasis_args

__all__ = [
    "CallFacts",
    "Decision",
    "LegPlan",
    "Presentation",
    "Reject",
    "RejectWhy",
    "RingPlan",
    "endpoint_of_channel",
    "plan_call",
    "presentation_of_stasis_args",
]
