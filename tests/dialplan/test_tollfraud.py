"""The last check before channels/create, as a table of endpoint strings."""

from __future__ import annotations

import pytest

from pbxd.config.model import Trunk
from pbxd.dialplan.flow import LegPlan
from pbxd.dialplan.flow import LegPlan as FlowLegPlan
from pbxd.dialplan.tollfraud import endpoint_is_allowed, endpoint_refusal, leg_refusal

FR = Trunk("carrier-fr", "trunk-in", "PJSIP/{number}@trunk-out", ("+33",), 10)
WORLD = Trunk("world", "trunk-in", "PJSIP/{number}@trunk-out", ("+1", "+33", "+1876"), 10)


@pytest.mark.parametrize(
    ("endpoint", "trunk", "allowed"),
    [
        ("PJSIP/alice", None, True),
        ("PJSIP/bob.laptop-2_x", None, True),
        ("PJSIP/1001", None, True),  # an extension
        ("PJSIP/+19005551234@trunk-out", None, False),
        ("PJSIP/0019005551234", None, False),  # a number, not an endpoint name
        ("PJSIP/alice&PJSIP/bob", None, False),
        ("PJSIP/trunk-out/sip:+19005551234@evil", None, False),
        ("Local/+19005551234@from-internal", None, False),
        ("pjsip/alice", None, False),  # the planner writes the canonical form
        ("PJSIP/alice\n", None, False),
        ("PJSIP/+33612345678@trunk-out", FR, True),
        ("PJSIP/+33612345678@trunk-in", FR, False),  # not this trunk's way out
        ("PJSIP/+44207946012@trunk-out", FR, False),  # outside +33
        ("PJSIP/+33899123456@trunk-out", FR, False),  # premium-rate, denied by default
        ("PJSIP/+33612345678@trunk-out&Local/+882100000001@from-internal", FR, False),
        ("PJSIP/+33612345678@trunk-out/sip:x@evil", FR, False),
        ("PJSIP/+336123456789012345@trunk-out", FR, False),  # longer than E.164
        ("PJSIP/+3361234567\u0662@trunk-out", FR, False),  # an Arabic-Indic digit
        ("PJSIP/alice", FR, False),  # a softphone string on a trunk leg
        ("PJSIP/+12125551234@trunk-out", WORLD, True),
        ("PJSIP/+19005551234@trunk-out", WORLD, False),  # +1 does not open +1900
        ("PJSIP/+18765551234@trunk-out", WORLD, True),  # +1876 explicitly allowed
        ("PJSIP/+881612345678@trunk-out", WORLD, False),
    ],
)
def test_endpoint_is_allowed(endpoint: str, trunk: Trunk | None, allowed: bool) -> None:
    assert endpoint_is_allowed(endpoint, trunk) is allowed, endpoint_refusal(endpoint, trunk)


def test_a_trunk_with_a_bad_template_dials_nothing() -> None:
    bad = Trunk("x", "trunk-in", "PJSIP/{number}@trunk-out&Local/1@x", ("+33",), 10)
    assert not endpoint_is_allowed(bad.dial_string("+33612345678"), bad)


def leg(
    dial_string: str, trunk: str | None, via: Trunk | None, barred: str | None = None
) -> LegPlan:
    return LegPlan("t", dial_string, trunk, 10, "+33612000001", "", via=via, barred=barred)


def test_leg_refusal() -> None:
    assert leg_refusal(leg("PJSIP/+33612345678@trunk-out", "carrier-fr", FR)) is None
    assert leg_refusal(leg("PJSIP/alice", None, None)) is None
    # The planner's own refusal stands.
    assert leg_refusal(leg("PJSIP/alice", None, None, barred="no")) == "no"
    # A trunk leg without the trunk's rules, or with another trunk's, is never placed.
    assert leg_refusal(leg("PJSIP/+33612345678@trunk-out", "carrier-fr", None)) is not None
    assert leg_refusal(leg("PJSIP/+33612345678@trunk-out", "carrier-fr", WORLD)) is not None


def test_the_flows_legs_are_checked_the_same_way() -> None:
    # The rebuilt call core runs flow.LegPlan: the same check applies to it.
    def flow_leg(dial_string: str, via: Trunk | None) -> FlowLegPlan:
        return FlowLegPlan("t", dial_string, via.name if via else None, 10, "", "", via=via)

    assert leg_refusal(flow_leg("PJSIP/+33612345678@trunk-out", FR)) is None
    assert leg_refusal(flow_leg("PJSIP/+33899123456@trunk-out", FR)) is not None
    assert leg_refusal(flow_leg("PJSIP/+19005551234@trunk-out", None)) is not None
