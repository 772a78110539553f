"""The decision for a call a softphone places: pure, no I/O, no clock of its own.

The dialplan hands it over as `Stasis(pbxd,outbound,${CALLERID(pres)})` with the number dialled
as `${EXTEN}`. The softphone (the channel's endpoint) must be named in an `outbound:` entry;
what it dialled is read in its country (`06 12 34 56 78`, `00 44 ...`, `+44 ...`), with
`*31*` (or `#31#`) before it for presentation restricted. Emergency numbers always go out,
under the user's real identity, never withheld; anything else must pass the user's narrowing,
the trunk's allowlist and its denied destinations, or is refused before any channel exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from pbxd.config.destinations import BARRED_CAUSE
from pbxd.config.model import CallingOut, Config, Trunk
from pbxd.dialplan.flow import CallOut, Flow, HangupStep, LegPlan, RingStep, Step
from pbxd.dialplan.plan import (
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
    trunk = config.trunks[rights.trunk]
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
    if dialled.emergency:
        presented = rights.emergency_caller_id or rights.number
        pres = Presentation.ALLOWED_NOT_SCREENED  # emergency services always get the identity
    else:
        refusal = rights.refusal(dialled.number, trunk)
        if refusal is not None:
            return refuse(RejectWhy.FORBIDDEN_DESTINATION, BARRED_CAUSE, refusal, dialled.number)
        presented = rights.number
        withheld = rights.withhold or dialled.withheld or presentation.withheld
        pres = Presentation.PROHIB_NOT_SCREENED if withheld else Presentation.ALLOWED_NOT_SCREENED
    leg = _leg(rights, trunk, dialled, presented, pres)
    steps: dict[str, Step] = {
        RING_STEP: RingStep(
            name=RING_STEP,
            strategy=RingStrategy.RINGALL,
            legs=(leg,),
            timeout=rights.timeout,
            no_answer="no_answer",
            busy="busy",
            unavailable="unavailable",
            early_media=True,
        ),
        "no_answer": HangupStep("no_answer", HangupReason.NO_ANSWER),
        "busy": HangupStep("busy", HangupReason.BUSY),
        "unavailable": HangupStep("unavailable", HangupReason.CONGESTION, leg_cause=True),
    }
    number = config.numbers.get(rights.number)
    return Flow(
        did=rights.number,
        trunk=trunk.name,
        route=rights.name,
        start=RING_STEP,
        steps=steps,
        caller_number=endpoint,
        caller_name=caller_name,
        caller_withheld=not pres.allowed,
        timezone=number.timezone if number is not None else "UTC",
        call_out=CallOut(rights.name, dialled.number, presented, dialled.emergency),
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
