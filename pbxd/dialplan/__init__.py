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

__all__ = [
    "CallFacts",
    "Decision",
    "LegPlan",
    "Reject",
    "RejectWhy",
    "RingPlan",
    "endpoint_of_channel",
    "plan_call",
]
