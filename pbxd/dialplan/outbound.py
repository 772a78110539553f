"""The decision for a call a softphone places: pure, no I/O, no clock of its own.

The dialplan hands it over as `Stasis(pbxd,outbound,${CALLERID(pres)})` with the number dialled
as `${EXTEN}`. The softphone (the channel's endpoint) must be named in an `outbound:` entry;
what it dialled is read in its country (`06 12 34 56 78`, `00 44 ...`, `+44 ...`), with
`*31*` (or `#31#`) before it for presentation restricted. Emergency numbers always go out,
under the user's real identity, never withheld; anything else must pass the user's narrowing,
the trunk's allowlist and its denied destinations, or is refused before any channel exists.
"""

from __future__ import annotations

import dataclasses
import hmac
from dataclasses import dataclass

from pbxd.config.destinations import BARRED_CAUSE
from pbxd.config.files import FallbackAction
from pbxd.config.model import CallingOut, Config, Trunk
from pbxd.dialplan.flow import (
    CallOut,
    CallThroughStep,
    CallThroughUser,
    Flow,
    FlowLimits,
    HangupStep,
    LegPlan,
    RingStep,
    Step,
)
from pbxd.dialplan.plan import (
    PLAN_LIMIT_STEP,
    CallFacts,
    Decision,
    Reject,
    RejectWhy,
    endpoint_of_channel,
    max_call_duration,
    normalise_number,
)
from pbxd.dialplan.presentation import Presentation, presentation_of_stasis_args
from pbxd.dialplan.tollfraud import endpoint_refusal, is_emergency
from pbxd.vocabulary import HangupReason, RingStrategy

# Per-call CLIR as GSM (`#31#`) and French carriers (`*31*`) write it before the number.
CLIR_PREFIXES = ("*31*", "#31#")
# What a dialled number may be written with besides digits (phones send them as typed).
_SEPARATORS = str.maketrans("", "", " -.()/")
RING_STEP = "ring"
# Q.850 21 "call rejected": a softphone that is not allowed to call out at all.
NOT_ALLOWED_CAUSE = 21
# Q.850 28 "invalid number format": what was dialled is not a number.
BAD_NUMBER_CAUSE = 28


@dataclass(frozen=True, slots=True)
class Dialled:
    """What a softphone dialled, read: the number to call and how to present the caller."""

    number: str  # E.164, or the short number of an emergency call
    emergency: bool
    withheld: bool  # `*31*` before the number


def read_dialled(raw: str, country: str | None) -> Dialled | None:
    """The number a softphone dialled, in E.164 (an emergency number stays short); None if
    it is not a number."""
    text = raw.strip().translate(_SEPARATORS)
    withheld = False
    for prefix in CLIR_PREFIXES:
        if text.startswith(prefix):
            text, withheld = text[len(prefix) :], True
            break
    if not text or len(text) > 20:
        return None
    if country and text.isascii() and text.isdigit() and is_emergency(text, country):
        return Dialled(text, emergency=True, withheld=withheld)
    number = normalise_number(text, country)
    if number is None:
        return None
    return Dialled(number, emergency=False, withheld=withheld)


def plan_outbound(facts: CallFacts, config: Config) -> Decision:
    """Decide what to do with a call a softphone places (Stasis args `outbound,<pres>`)."""
    endpoint = endpoint_of_channel(facts.channel_name)
    rights = config.outbound_of_endpoint.get(endpoint)
    presentation = presentation_of_stasis_args(facts.stasis_args[1:])
    caller_name = "".join(c for c in facts.caller_name if c.isprintable())[:80]
    shown = "".join(c for c in facts.called if c.isprintable())[:40]
    if rights is None:
        return Reject(
            did=f"PJSIP/{endpoint}"[:64],
            trunk=None,
            why=RejectWhy.NOT_ALLOWED_OUT,
            reason=HangupReason.REJECTED,
            caller_number=endpoint,
            caller_name=caller_name,
            cause=NOT_ALLOWED_CAUSE,
            detail=f"softphone {endpoint} may not call out (no `outbound:` entry names it)",
        )
    user = user_of(rights, config)
    trunk = user.trunk
    dialled = read_dialled(facts.called, rights.country)

    def refuse(why: RejectWhy, cause: int, detail: str, number: str) -> Reject:
        return Reject(
            did=rights.number,
            trunk=trunk.name,
            why=why,
            reason=HangupReason.REJECTED,
            caller_number=endpoint,
            caller_name=caller_name,
            cause=cause,
            detail=detail,
            call_out=CallOut(rights.name, number, rights.number),
        )

    if dialled is None:
        return refuse(
            RejectWhy.BAD_NUMBER, BAD_NUMBER_CAUSE, f"{shown!r} is not a phone number", shown
        )
    going = _going_out(user, dialled, presentation.withheld, "")
    if isinstance(going, str):
        return refuse(RejectWhy.FORBIDDEN_DESTINATION, BARRED_CAUSE, going, dialled.number)
    steps, call_out, limits, withheld = going
    return Flow(
        did=rights.number,
        trunk=trunk.name,
        route=rights.name,
        start=RING_STEP,
        steps=steps,
        caller_number=endpoint,
        caller_name=caller_name,
        caller_withheld=withheld,
        timezone=user.timezone,
        call_out=call_out,
        limits=limits,
    )


def user_of(rights: CallingOut, config: Config) -> CallThroughUser:
    """What one `outbound:` entry needs at run time: its trunk, plan and time zone."""
    number = config.numbers.get(rights.number)
    return CallThroughUser(
        rights,
        config.trunks[rights.trunk],
        config.plan_of_number.get(rights.number),
        number.timezone if number is not None else "UTC",
    )


def _going_out(
    user: CallThroughUser, dialled: Dialled, asked_withheld: bool, prefix: str
) -> tuple[dict[str, Step], CallOut, FlowLimits | None, bool] | str:
    """The steps of a call going out (ring `{prefix}ring`, then hang up as the far end
    said), what the call log shows, the plan's limits and whether the number is withheld;
    or why the destination is refused."""
    rights, trunk = user.rights, user.trunk
    if dialled.emergency:
        presented = rights.emergency_caller_id or rights.number
        pres = Presentation.ALLOWED_NOT_SCREENED  # emergency services always get the identity
    else:
        refusal = rights.refusal(dialled.number, trunk)
        if refusal is not None:
            return refusal
        presented = rights.number
        withheld = rights.withhold or dialled.withheld or asked_withheld
        pres = Presentation.PROHIB_NOT_SCREENED if withheld else Presentation.ALLOWED_NOT_SCREENED
    leg = _leg(rights, trunk, dialled, presented, pres)
    names = {key: f"{prefix}{key}" for key in ("ring", "no_answer", "busy", "unavailable")}
    steps: dict[str, Step] = {
        names["ring"]: RingStep(
            name=names["ring"],
            strategy=RingStrategy.RINGALL,
            legs=(leg,),
            timeout=rights.timeout,
            no_answer=names["no_answer"],
            busy=names["busy"],
            unavailable=names["unavailable"],
            early_media=True,
        ),
        names["no_answer"]: HangupStep(names["no_answer"], HangupReason.NO_ANSWER),
        names["busy"]: HangupStep(names["busy"], HangupReason.BUSY),
        names["unavailable"]: HangupStep(
            names["unavailable"], HangupReason.CONGESTION, leg_cause=True
        ),
    }
    plan = None if dialled.emergency else user.plan
    limits = None
    if plan is not None:
        # A call going out has nowhere to overflow to: it is refused with the plan's cause.
        cause = plan.at_limit.cause if plan.at_limit.action is FallbackAction.HANGUP else None
        at_limit = f"{prefix}{PLAN_LIMIT_STEP}"
        steps[at_limit] = HangupStep(at_limit, cause or HangupReason.REJECTED)
        limits = FlowLimits(plan, True, at_limit)
    call_out = CallOut(rights.name, dialled.number, presented, dialled.emergency)
    return steps, call_out, limits, not pres.allowed


def call_through(flow: Flow, step: CallThroughStep, pin: str, typed: str) -> Flow | str:
    """The flow once a registered mobile keyed its PIN and a number: the call going out
    (its steps added under the step's `out`), or why it is refused. Same rules as a softphone.
    """
    user = step.users.get(flow.caller_number)
    expected = user.rights.pin if user is not None else None
    # Compared in constant time: how long a refusal takes says nothing of the PIN.
    if user is None or expected is None or not hmac.compare_digest(expected, pin):
        return "wrong PIN"
    dialled = read_dialled(typed, user.rights.country)
    if dialled is None:
        return "what was keyed is not a phone number"
    prefix = step.out.removesuffix("ring")
    going = _going_out(user, dialled, False, prefix)
    if isinstance(going, str):
        return going
    steps, call_out, limits, withheld = going
    return dataclasses.replace(
        flow,
        did=user.rights.number,
        trunk=user.trunk.name,
        route=user.rights.name,
        steps={**flow.steps, **steps},
        caller_withheld=withheld,
        timezone=user.timezone,
        call_out=call_out,
        limits=limits,
    )


def _leg(
    rights: CallingOut, trunk: Trunk, dialled: Dialled, presented: str, pres: Presentation
) -> LegPlan:
    """The one leg of a call going out: the carrier, presenting the virtual number."""
    dial_string = trunk.dial_string(dialled.number)
    region = rights.country if dialled.emergency else None
    return LegPlan(
        target=dialled.number,
        dial_string=dial_string,
        trunk=trunk.name,
        ring_time=rights.timeout,
        caller_id_number=presented,
        caller_id_name="",
        caller_id_presentation=pres,
        max_duration=max_call_duration(None, trunk),
        via=trunk,
        barred=None if dialled.emergency else endpoint_refusal(dial_string, trunk),
        emergency_region=region,
    )


CALL_THROUGH_STEP = "call_through"
OUT_STEP = "out/ring"
REFUSED_STEP = "refused"


def call_through_flow(
    did: str,
    trunk: str | None,
    caller_number: str,
    caller_name: str,
    withheld: bool,
    config: Config,
) -> Flow:
    """An access number's flow: the call-through step, then the call going out (built once
    the number is keyed), or a refusal (call rejected, cause 21)."""
    settings = config.call_through
    assert settings is not None
    users = {
        mobile: user_of(rights, config) for mobile, rights in config.outbound_of_mobile.items()
    }
    steps: dict[str, Step] = {
        CALL_THROUGH_STEP: CallThroughStep(
            CALL_THROUGH_STEP,
            users,
            OUT_STEP,
            REFUSED_STEP,
            settings.timeout,
            settings.tone,
        ),
        REFUSED_STEP: HangupStep(REFUSED_STEP, HangupReason.REJECTED),
        # Replaced by the ring step once the number is keyed (`call_through`).
        OUT_STEP: HangupStep(OUT_STEP, HangupReason.REJECTED),
    }
    number = config.numbers.get(did)
    return Flow(
        did=did,
        trunk=trunk,
        route=CALL_THROUGH_STEP,
        start=CALL_THROUGH_STEP,
        steps=steps,
        caller_number=caller_number,
        caller_name=caller_name,
        caller_withheld=withheld,
        timezone=number.timezone if number is not None else "UTC",
    )
