"""The last word on an outbound leg: may pbxd send this endpoint to `channels/create`?

`pbxd check` already refuses a configuration that could dial outside a trunk's allowlist;
this is the same rule applied once more to the very string sent to Asterisk, at plan time
and again just before the channel is created, so no bug or hand-built plan can slip a
premium-rate number, a URI or a second destination through.
"""

from __future__ import annotations

from typing import Protocol

from phonenumbers import shortnumberinfo

from pbxd.config.destinations import bare_softphone, split_outbound
from pbxd.config.model import Trunk


class PlannedLeg(Protocol):
    """What the check reads of a leg: today's `plan.LegPlan` and the flow's `flow.LegPlan`."""

    @property
    def dial_string(self) -> str:
        """The endpoint string for channels/create."""
        ...

    @property
    def trunk(self) -> str | None:
        """The trunk's name, None for a softphone."""
        ...

    @property
    def via(self) -> Trunk | None:
        """The trunk's rules."""
        ...

    @property
    def barred(self) -> str | None:
        """The planner's refusal."""
        ...

    @property
    def emergency_region(self) -> str | None:
        """The region of an emergency call (its short number is dialled), else None."""
        ...


def is_emergency(short: str, region: str) -> bool:
    """Whether `short` is an emergency number in `region` (112, 15, 17, 18 in FR; 999 in GB)."""
    return shortnumberinfo.is_emergency_number(short, region.upper())


def endpoint_refusal(endpoint: str, trunk: Trunk | None) -> str | None:
    """Why `endpoint` must not be dialled (None: it may).

    Without a trunk it must be a bare softphone (`PJSIP/alice`). Through a trunk it must be
    exactly `PJSIP/<E.164>@<the trunk's outbound endpoint>` with a number the trunk's
    allowed and denied destinations permit.
    """
    if trunk is None:
        if bare_softphone(endpoint):
            return None
        return f"{endpoint!r} is not a softphone endpoint such as PJSIP/alice"
    parts = split_outbound(endpoint)
    if parts is None or trunk.outbound_endpoint is None or endpoint != trunk.dial_string(parts[0]):
        return f"{endpoint!r} is not PJSIP/<number>@<endpoint> of trunk {trunk.name}"
    return trunk.refusal(parts[0])


def endpoint_is_allowed(endpoint: str, trunk: Trunk | None) -> bool:
    """Whether pbxd may send `endpoint` to `channels/create` (see `endpoint_refusal`)."""
    return endpoint_refusal(endpoint, trunk) is None


def leg_refusal(leg: PlannedLeg) -> str | None:
    """Why a planned leg must not be placed (None: it may); checked just before creating it."""
    if leg.barred is not None:
        return leg.barred
    if leg.trunk is not None and (leg.via is None or leg.via.name != leg.trunk):
        return f"no rules of trunk {leg.trunk} to check {leg.dial_string!r} against"
    if leg.emergency_region is not None and leg.via is not None:
        return emergency_refusal(leg.dial_string, leg.via, leg.emergency_region)
    return endpoint_refusal(leg.dial_string, leg.via)


def emergency_refusal(endpoint: str, trunk: Trunk, region: str) -> str | None:
    """Why `endpoint` is not an emergency call through `trunk` (None: it is one).

    It must be exactly the trunk's template around a short number phonenumbers knows as an
    emergency number of `region`: nothing else escapes the allowlist this way.
    """
    prefix, _, rest = trunk.dial_template.partition("{number}")
    short = endpoint.removeprefix(prefix).removesuffix(rest) if endpoint.startswith(prefix) else ""
    if not (short.isascii() and short.isdigit()) or endpoint != trunk.dial_string(short):
        return f"{endpoint!r} is not an emergency number dialled through trunk {trunk.name}"
    if not is_emergency(short, region):
        return f"{short} is not an emergency number in {region}"
    return None
