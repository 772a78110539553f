"""AGI mode's decisions, pure: a FastAGI request -> the variables the dialplan dials with, and
the dialplan's report after `Dial()` -> the call's CDR.

In AGI mode Asterisk's own dialplan rings the targets; pbxd only routes (the same planner
as in Stasis mode) and keeps the call log. The walk over the call flow stops at the first
step the dialplan must take over: a ring (PBXD_RESULT=ring), a closed line
(PBXD_RESULT=closed: the dialplan plays its own message or voicemail), or anything pbxd
could only do itself over ARI, and a hangup (PBXD_RESULT=reject).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from pbxd.agi.protocol import AgiRequest
from pbxd.cdr.records import (
    CallPath,
    CallRecord,
    Disposition,
    LegRecord,
    PathStep,
    StepKind,
    StepOutcome,
)
from pbxd.config.files import HangupReason, RingStrategy
from pbxd.config.model import Config
from pbxd.dialplan.flow import (
    Flow,
    GotoStep,
    HangupStep,
    LegPlan,
    PlayStep,
    RingStep,
    ScheduleStep,
    Step,
)
from pbxd.dialplan.outcome import CAUSE_OF_REASON
from pbxd.dialplan.plan import CallFacts, Reject, plan_call

MAX_STEPS = 64  # a flow is checked for loops by `pbxd check`; this only bounds a bad one
_NOT_NUMBERS = frozenset({"s", "h", "i", "t", "e", "o", "a", "T"})  # special extensions


class AgiResult(StrEnum):
    """PBXD_RESULT: what the dialplan should do next."""

    RING = "ring"  # Dial(${PBXD_DIAL},${PBXD_TIMEOUT})
    REJECT = "reject"  # Hangup(${PBXD_CAUSE})
    CLOSED = "closed"  # outside opening hours: the dialplan's closed message


@dataclass(frozen=True, slots=True)
class RouteAnswer:
    """pbxd's answer to `AGI(agi://…/route)`, and what the CDR needs of it later."""

    result: AgiResult
    did: str
    why: str  # one sentence for the log
    trunk: str | None = None
    route: str | None = None
    strategy: RingStrategy | None = None
    caller_number: str = ""
    caller_name: str = ""
    legs: tuple[LegPlan, ...] = ()  # the legs PBXD_DIAL rings
    hunt: tuple[LegPlan, ...] = ()  # a hunt's whole order (PBXD_HUNT_*)
    timeout: int = 0
    cause: int | None = None  # Q.850, for a reject
    path: CallPath = field(default=())
    greeting: tuple[str, ...] = ()  # prompts to play before ringing (Playback's names)
    greeting_answers: bool = False  # the route answers for its greeting (else early media)

    def variables(self) -> list[tuple[str, str]]:
        """The channel variables to set, PBXD_RESULT last (a cut session never says ring)."""
        found = [("PBXD_DID", self.did)]
        if self.route is not None:
            found.append(("PBXD_ROUTE", self.route))
        if self.result is AgiResult.RING:
            first = self.legs[0]
            found += [
                ("PBXD_DIAL", "&".join(leg.dial_string for leg in self.legs)),
                ("PBXD_TIMEOUT", str(self.timeout)),
                ("PBXD_CALLERID", first.caller_id_number),
                ("PBXD_CALLERID_NAME", first.caller_id_name),
            ]
            if self.hunt:
                found.append(("PBXD_HUNT_COUNT", str(len(self.hunt))))
                for n, leg in enumerate(self.hunt, 1):
                    found += [(f"PBXD_HUNT_DIAL_{n}", leg.dial_string)]
                    found += [(f"PBXD_HUNT_TIMEOUT_{n}", str(leg.ring_time))]
        if self.greeting:
            found.append(("PBXD_GREETING", "&".join(self.greeting)))
            found.append(("PBXD_GREETING_ANSWER", "1" if self.greeting_answers else "0"))
        if self.cause is not None:
            found.append(("PBXD_CAUSE", str(self.cause)))
        found.append(("PBXD_RESULT", str(self.result)))
        return found


def called_number(request: AgiRequest) -> str:
    """The number to route: the script's first argument, else ${EXTEN}, else the DNID."""
    if request.args and request.args[0].strip():
        return request.args[0].strip()
    extension = request.extension.strip()
    if extension and extension not in _NOT_NUMBERS:
        return extension
    return request.dnid


def route_request(request: AgiRequest, config: Config, now: datetime) -> RouteAnswer:
    """Route one call as `AGI(agi://…/route)` asks: the planner's flow, walked at `now`."""
    called = called_number(request)
    facts = CallFacts(
        channel_id=request.uniqueid,
        channel_name=request.channel,
        called=called,
        caller_number=request.caller_number,
        caller_name=request.caller_name,
        stasis_args=(request.calling_pres,) if request.calling_pres.strip() else (),
    )
    decision = plan_call(facts, config)
    if isinstance(decision, Reject):
        return RouteAnswer(
            AgiResult.REJECT,
            decision.did,
            decision.message,
            trunk=decision.trunk,
            caller_number=decision.caller_number,
            caller_name=decision.caller_name,
            cause=CAUSE_OF_REASON[decision.reason],
        )
    return walk_flow(decision, now)


def walk_flow(flow: Flow, now: datetime) -> RouteAnswer:
    """Follow `flow` from its start to the first step the dialplan has to take over."""
    path: list[PathStep] = []
    greeting: list[str] = []
    answers = False
    base = RouteAnswer(
        AgiResult.REJECT,
        flow.did,
        "",
        trunk=flow.trunk,
        route=flow.route,
        caller_number=flow.caller_number,
        caller_name=flow.caller_name,
    )
    step: Step = flow.step(flow.start)
    for _ in range(MAX_STEPS):
        match step:
            case ScheduleStep():
                is_open = step.hours.is_open(now)
                outcome = StepOutcome.OPEN if is_open else StepOutcome.CLOSED
                path.append(PathStep(StepKind.SCHEDULE, outcome))
                if not is_open:
                    return _replace(base, AgiResult.CLOSED, "outside opening hours", path)
                step = flow.step(step.open)
            case PlayStep():
                # The dialplan plays them (PBXD_GREETING), before it dials.
                greeting += [p.removeprefix("sound:") for p in step.prompts]
                answers = answers or step.answer
                step = flow.step(step.next)
            case GotoStep():
                path.append(PathStep(StepKind.GOTO, StepOutcome.JUMPED, step.target))
                step = flow.step(step.target)
            case RingStep() if step.legs:
                ring = _ring(base, step, path)
                return dataclasses.replace(ring, greeting=tuple(greeting), greeting_answers=answers)
            case HangupStep():
                cause = CAUSE_OF_REASON[step.reason]
                return _replace(base, AgiResult.REJECT, f"hangup ({step.reason})", path, cause)
            case _:
                return _replace(
                    base,
                    AgiResult.REJECT,
                    f"the route's {step.kind} step needs pbxd's Stasis mode",
                    path,
                    CAUSE_OF_REASON[HangupReason.FAILURE],
                )
    failure = CAUSE_OF_REASON[HangupReason.FAILURE]
    return _replace(base, AgiResult.REJECT, "the flow does not end", path, failure)


def _replace(
    base: RouteAnswer,
    result: AgiResult,
    why: str,
    path: list[PathStep],
    cause: int | None = None,
) -> RouteAnswer:
    return RouteAnswer(
        result,
        base.did,
        why,
        trunk=base.trunk,
        route=base.route,
        caller_number=base.caller_number,
        caller_name=base.caller_name,
        cause=cause,
        path=tuple(path),
    )


def _ring(base: RouteAnswer, step: RingStep, path: list[PathStep]) -> RouteAnswer:
    """Ringall dials every leg at once; a hunt dials its first target (PBXD_HUNT_* the rest)."""
    hunt = step.strategy.one_at_a_time  # in written order: the memory is the daemon's
    legs = step.legs[:1] if hunt else step.legs
    return RouteAnswer(
        AgiResult.RING,
        base.did,
        f"{step.strategy}: {len(legs)} of {len(step.legs)} target(s)",
        trunk=base.trunk,
        route=base.route,
        strategy=step.strategy,
        caller_number=base.caller_number,
        caller_name=base.caller_name,
        legs=legs,
        hunt=step.legs if hunt else (),
        timeout=min(step.timeout, max(leg.ring_time for leg in legs)),
        path=tuple(path),
    )


# ------------------------------------------------------------------------ the outcome

# ${DIALSTATUS} (app_dial) -> the call's disposition and the ring step's outcome.
_DIAL_STATUS: dict[str, tuple[Disposition, StepOutcome]] = {
    "ANSWER": (Disposition.ANSWERED, StepOutcome.ANSWERED),
    "NOANSWER": (Disposition.NO_ANSWER, StepOutcome.NO_ANSWER),
    "BUSY": (Disposition.BUSY, StepOutcome.BUSY),
    "CANCEL": (Disposition.ABANDONED, StepOutcome.ABANDONED),
    "CONGESTION": (Disposition.FAILED, StepOutcome.UNAVAILABLE),
    "CHANUNAVAIL": (Disposition.FAILED, StepOutcome.UNAVAILABLE),
    "DONTCALL": (Disposition.REJECTED, StepOutcome.UNAVAILABLE),
    "TORTURE": (Disposition.REJECTED, StepOutcome.UNAVAILABLE),
    "INVALIDARGS": (Disposition.FAILED, StepOutcome.UNAVAILABLE),
}


@dataclass(frozen=True, slots=True)
class DialOutcome:
    """What the dialplan reports after `Dial()` (`AGI(agi://…/result,…)`)."""

    status: str  # ${DIALSTATUS}; empty when Dial() never ran (a closed line, a reject)
    answered_seconds: int | None = None  # ${ANSWEREDTIME}
    dialed_seconds: int | None = None  # ${DIALEDTIME}
    peer: str = ""  # ${DIALEDPEERNUMBER}: `alice`, `+33612345678@trunk-out`
    cause: int | None = None  # ${HANGUPCAUSE}

    @property
    def known(self) -> bool:
        """A DIALSTATUS app_dial can set (anything else is read as no Dial)."""
        return self.status in _DIAL_STATUS


def seconds_of(text: str | None) -> int | None:
    """`12` -> 12; empty, negative or not a number -> None (a variable that was never set)."""
    value = (text or "").strip()
    if not value.isascii() or not value.isdigit() or len(value) > 7:
        return None
    return int(value)


def call_record(
    answer: RouteAnswer, call_id: str, started_at: datetime, outcome: DialOutcome, now: datetime
) -> tuple[CallRecord, list[LegRecord]]:
    """The CDR of a call the dialplan rang: the call row and one row per leg it dialled."""
    record = CallRecord(
        call_id=call_id,
        did=answer.did,
        started_at=started_at,
        caller_number=answer.caller_number or None,
        caller_name=answer.caller_name or None,
        trunk=answer.trunk,
        route=answer.route,
        strategy=str(answer.strategy) if answer.strategy else None,
        ended_at=now,
        path=answer.path,
    )
    if answer.result is not AgiResult.RING:
        closed = answer.result is AgiResult.CLOSED
        record.disposition = Disposition.CLOSED if closed else Disposition.REJECTED
        record.hangup_cause = answer.cause
        return record, []
    if not outcome.known:
        # The caller left before Dial() ran (or the dialplan reported nothing usable).
        record.disposition = Disposition.ABANDONED
        record.add_step(PathStep(StepKind.RING, StepOutcome.ABANDONED))
        return record, []
    disposition, step_outcome = _DIAL_STATUS[outcome.status]
    record.disposition = disposition
    record.add_step(PathStep(StepKind.RING, step_outcome))
    record.hangup_cause = outcome.cause
    answered = disposition is Disposition.ANSWERED
    if answered and outcome.answered_seconds is not None:
        record.answered_at = now - timedelta(seconds=outcome.answered_seconds)
    elif answered:
        record.answered_at = now
    winner = _answering_leg(answer.legs, outcome.peer) if answered else None
    record.answered_by = winner.target if winner else None
    dial_start = started_at
    if outcome.dialed_seconds is not None:
        dial_start = max(started_at, now - timedelta(seconds=outcome.dialed_seconds))
    legs = []
    for n, leg in enumerate(answer.legs, 1):
        won = leg is winner
        legs.append(
            LegRecord(
                leg_id=f"{call_id}-{n}",
                call_id=call_id,
                target=leg.target,
                destination=leg.dial_string,
                started_at=dial_start,
                answered_at=record.answered_at if won else None,
                # The others stop ringing when one answers (cause 26 in Asterisk).
                ended_at=now if won or not answered else record.answered_at,
                hangup_cause=outcome.cause if won or len(answer.legs) == 1 else None,
            )
        )
    return record, legs


def _answering_leg(legs: tuple[LegPlan, ...], peer: str) -> LegPlan | None:
    """The leg ${DIALEDPEERNUMBER} names (`alice` for PJSIP/alice); the only one if one."""
    if len(legs) == 1:
        return legs[0]
    wanted = peer.strip()
    for leg in legs:
        if wanted and leg.dial_string.partition("/")[2] == wanted:
            return leg
    return None
