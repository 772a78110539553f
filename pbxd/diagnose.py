"""The support checklist for "my number doesn't ring", answered in one place.

Is the number ours, and in service (active; porting, with its date and the losing carrier;
reserved)? Where does its flow lead now (the dialplan's own planner, at `now`, in the
number's zone)? Is each target's softphone online (presence, as the daemon or Asterisk
knows it; when neither can be asked, it says so)? What did the last failed calls hear?
And one verdict line a support agent can read to the customer.

`diagnose` gathers the facts (the CDR query is its only I/O, presence is handed in);
`verdict` is a pure function over them; `diagnosis_json` and `format_text` show them. The
API (`/api/numbers/{number}/diagnose`) and `pbxd diagnose` both call `diagnose`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine

from pbxd.cdr import queries, usage
from pbxd.cdr.records import CallLogEntry
from pbxd.cdr.reports import HANGUP_CAUSES, hangup_cause_text, leg_outcome
from pbxd.config.destinations import BARRED_CAUSE
from pbxd.config.files import NumberStatus
from pbxd.config.model import Config, Plan, Target, VirtualNumber
from pbxd.config.numbering import zone_of
from pbxd.dialplan.flow import (
    Flow,
    GotoStep,
    HangupStep,
    MenuStep,
    PlayStep,
    RingStep,
    ScheduleStep,
    Step,
    VoicemailStep,
)
from pbxd.dialplan.limits import (
    Billable,
    PlanUsage,
    UsageKind,
    in_window,
    limit_seconds,
    month_of,
    refusal,
    used_seconds,
)
from pbxd.dialplan.plan import CallFacts, Reject, plan_inbound

FAILED_CALLS_SHOWN = 3
MAX_STEPS = 50  # a flow's walk stops here (the planner refuses loops; this is a backstop)
ONLINE = "online"
OFFLINE = "offline"

# Causes of an external target's leg that say the carrier would not put the call through.
CARRIER_REFUSALS: Mapping[int, str] = {
    cause: HANGUP_CAUSES[cause]  # the call log's words for them
    for cause in (1, 3, 20, 21, 27, 28, 34, 38, 41, 42, BARRED_CAUSE)
}


@dataclass(frozen=True, slots=True)
class Presence:
    """Softphone states as asked (`PJSIP/alice` -> `online`), or why they could not be."""

    states: Mapping[str, str] | None  # None: could not ask
    source: str  # who answered, or who was tried: "daemon at http://127.0.0.1:8080"
    error: str | None = None  # "can't ask: daemon not reachable at …"

    @classmethod
    def unknown(cls, why: str, source: str = "") -> Presence:
        """Nobody could be asked: `why` says so plainly."""
        return cls(None, source, why)

    def state(self, endpoint: str) -> str | None:
        """`online`, `offline`, `unknown`; None when nobody could be asked."""
        if self.states is None:
            return None
        return self.states.get(endpoint, "unknown")


@dataclass(frozen=True, slots=True)
class TargetCheck:
    """One target the flow rings now, with what is known of it."""

    name: str
    kind: str  # softphone | external
    endpoint: str | None  # PJSIP/alice for a softphone
    presence: str | None  # online / offline / unknown; None: not asked (or not a softphone)
    dnd: bool
    last_cause: int | None = None  # its leg's cause in the newest failed call that rang it


@dataclass(frozen=True, slots=True)
class FlowNow:
    """Where a call arriving now goes: the steps in words, and the targets it rings."""

    steps: tuple[str, ...]
    open_now: bool | None  # None: the route has no opening hours
    ends_in: str  # ring, voicemail, menu, hangup, reject (the last step reached)
    ringing: tuple[str, ...] = ()  # targets of the ring step reached (enabled ones)
    rejected: str | None = None  # the planner's reason when it refuses the call


@dataclass(frozen=True, slots=True)
class PlanCheck:
    """The number's plan against what it used this month (its zone's) and its calls now."""

    name: str
    used: Mapping[UsageKind, int]  # seconds this month, calls in progress up to now
    allowed: Mapping[UsageKind, int | None]  # seconds a month; None: unlimited
    calls_in_progress: int
    max_calls: int | None
    finish: bool  # calls in progress at the limit run to their end (else they are cut)
    inbound_refused: str | None = None  # why a call arriving now goes to the plan's at_limit
    outbound_refused: str | None = None  # why a call going out now is refused


def plan_check(plan: Plan, billed: Sequence[Billable], calls: int, now: datetime) -> PlanCheck:
    """`plan` against `billed` (this month's) and `calls` in progress, as a call now meets it."""
    used = used_seconds(billed, now)
    return PlanCheck(
        plan.name,
        used,
        {kind: limit_seconds(plan, kind) for kind in UsageKind},
        calls,
        plan.max_calls,
        plan.finish,
        refusal(plan, UsageKind.FORWARDED, used, calls),
        refusal(plan, UsageKind.OUTBOUND, used, calls),
    )


@dataclass(frozen=True, slots=True)
class Facts:
    """Plain facts the verdict is drawn from (no configuration objects, no I/O)."""

    number: str
    in_inventory: bool
    status: str | None = None  # active | porting | reserved
    port_date: date | None = None
    days_to_port: int | None = None
    losing_carrier: str | None = None
    route: str | None = None
    flow: FlowNow | None = None
    targets: tuple[TargetCheck, ...] = ()
    failed_calls: int = 0
    presence_error: str | None = None
    plan: PlanCheck | None = None  # None: the number has no plan


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Facts, the failed calls behind them, and the verdict."""

    facts: Facts
    label: str
    time_zone: str
    checked_at: datetime
    presence: Presence
    failed: tuple[CallLogEntry, ...]
    verdict: str


# ------------------------------------------------------------------ the flow, now


def flow_now(flow: Flow, now: datetime, *, at_limit: bool = False) -> FlowNow:
    """Follow `flow` from its start as a call arriving at `now` would, to its first stop;
    with `at_limit`, from where the number's plan sends a call once it is used up."""
    steps: list[str] = []
    open_now: bool | None = None
    step: Step = flow.step(flow.start)
    if at_limit and flow.limits is not None:
        steps.append("plan limit")
        step = flow.step(flow.limits.at_limit)
    for _ in range(MAX_STEPS):
        match step:
            case ScheduleStep():
                open_now = step.hours.is_open(now)
                steps.append("open" if open_now else "closed")
                step = flow.step(step.open if open_now else step.closed)
            case PlayStep():
                steps.append("greeting")
                step = flow.step(step.next)
            case GotoStep():
                steps.append(f"goto {step.target.split('/')[0]}")
                step = flow.step(step.target)
            case RingStep():
                names = tuple(leg.target for leg in step.legs)
                steps.append(f"ring {', '.join(names) or 'nobody'} ({step.strategy})")
                return FlowNow(tuple(steps), open_now, "ring", names)
            case VoicemailStep():
                steps.append(f"voicemail {step.mailbox.name}")
                return FlowNow(tuple(steps), open_now, "voicemail")
            case MenuStep():
                steps.append("voice menu")
                return FlowNow(tuple(steps), open_now, "menu")
            case HangupStep():
                steps.append(f"hang up ({step.reason})")
                return FlowNow(tuple(steps), open_now, "hangup")
            case _:
                steps.append(str(step.kind))
                return FlowNow(tuple(steps), open_now, str(step.kind))
    return FlowNow(tuple(steps), open_now, "loop")


def plan_now(
    config: Config, number: VirtualNumber, now: datetime, *, at_limit: bool = False
) -> FlowNow:
    """The planner's decision for a call arriving now on the number's trunk, walked (from
    the plan's at_limit when the plan refuses the call)."""
    trunk = config.trunks.get(number.trunk)
    endpoint = trunk.inbound_endpoint if trunk else number.trunk
    facts = CallFacts(
        channel_id="diagnose",
        channel_name=f"PJSIP/{endpoint}-00000000",
        called=number.e164,
        caller_number="",
        caller_name="",
        now=now,
    )
    decision = plan_inbound(facts, config)
    if isinstance(decision, Reject):
        return FlowNow(("refused",), None, "reject", rejected=decision.message)
    return flow_now(decision, now, at_limit=at_limit)


# ------------------------------------------------------------------ the verdict (pure)


def _blocker(target: TargetCheck) -> str | None:
    """Why this target cannot ring now, in words; None when it can (or may)."""
    if target.dnd:
        return f"{target.name} on do-not-disturb"
    if target.kind == "softphone":
        return f"{target.name} offline" if target.presence == OFFLINE else None
    cause = target.last_cause
    if cause is not None and cause in CARRIER_REFUSALS:
        return f"{target.name} refused by the carrier, cause {cause} ({CARRIER_REFUSALS[cause]})"

    return None


def _nobody(targets: Sequence[TargetCheck]) -> str:
    """`every softphone offline and ceo-mobile refused by the carrier, cause 21 (…)`."""
    softphones = [t for t in targets if t.kind == "softphone"]
    parts: list[str] = []
    if len(softphones) > 1 and all(not t.dnd and t.presence == OFFLINE for t in softphones):
        parts.append("every softphone offline")
        rest = [t for t in targets if t.kind != "softphone"]
    else:
        rest = list(targets)
    parts += [reason for t in rest if (reason := _blocker(t)) is not None]
    return " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)


def verdict(facts: Facts) -> str:
    """One line for the customer: what happens to a call now, and why."""
    return _judge(facts)[0]


def rings_somebody(facts: Facts) -> bool:
    """Whether a call arriving now rings at least one target (`pbxd diagnose` exits 0)."""
    return _judge(facts)[1]


def _judge(facts: Facts) -> tuple[str, bool]:
    """The verdict and whether somebody rings: the call's fate, then calls going out."""
    text, rings = _call_now(facts)
    plan = facts.plan
    if plan is None or not facts.in_inventory:
        return text, rings
    if plan.inbound_refused:
        text = f"plan limit: {plan.inbound_refused}; {text}"
    if plan.outbound_refused and plan.outbound_refused != plan.inbound_refused:
        cut = "" if plan.finish else ", those in progress cut"
        text += f"; calls going out refused{cut}: {plan.outbound_refused}"
    return text, rings


def _call_now(facts: Facts) -> tuple[str, bool]:
    """What happens to a call arriving now, and whether it rings anybody."""
    if not facts.in_inventory:
        return f"not ours: {facts.number} is not in the inventory, calls to it are refused", False
    if facts.status == NumberStatus.RESERVED:
        return "reserved: the number takes no calls", False
    days = facts.days_to_port
    if facts.status == NumberStatus.PORTING and days is not None and days > 0:
        carrier = f" from {facts.losing_carrier}" if facts.losing_carrier else ""
        return (
            f"porting: calls reach pbxd once the port{carrier} completes on "
            f"{facts.port_date} ({days} day(s) left)"
        ), False
    flow = facts.flow
    if facts.route is None or flow is None or flow.ends_in == "reject":
        why = flow.rejected if flow is not None and flow.rejected else "it has no route"
        return f"refused: {why}", False
    where = " → ".join(flow.steps)
    if flow.ends_in != "ring":
        state = {True: "open now: ", False: "closed now: ", None: "now: "}[flow.open_now]
        if flow.steps[:1] == ("plan limit",):
            state = ""  # the verdict starts with the plan's limit: the hours do not count
        return f"{state}a call goes {where} (no phone rings)", False
    ringing = [t for t in facts.targets if t.name in flow.ringing]
    if not ringing:
        return "rings nobody: the route's ring step has no enabled target", False
    blocked = [t for t in ringing if _blocker(t) is not None]
    unknown = [t for t in ringing if t.kind == "softphone" and t.presence in (None, "unknown")]
    if len(blocked) == len(ringing):
        return f"rings nobody: {_nobody(ringing)}", False
    if len(blocked) + len(unknown) == len(ringing):
        names = ", ".join(t.name for t in unknown)
        known = f"; {_nobody(blocked)}" if blocked else ""
        why = "presence can't be asked" if facts.presence_error else "Asterisk does not know"
        return f"may ring nobody: can't tell if {names} online ({why}){known}", False
    can = [t.name for t in ringing if t not in blocked and t not in unknown]
    tail = f"; {_nobody(blocked)}" if blocked else ""
    if unknown:
        tail += f"; can't tell if {', '.join(t.name for t in unknown)} online"
    seen = (
        f"; {facts.failed_calls} failed call(s) below"
        if facts.failed_calls
        else "; no failed call recorded"
    )
    return f"rings {', '.join(can)} now{tail}{seen}", True


# ------------------------------------------------------------------ gathering the facts


def last_causes(failed: Sequence[CallLogEntry]) -> dict[str, int | None]:
    """Each target's leg cause in the newest failed call that rang it (newest first in)."""
    causes: dict[str, int | None] = {}
    for entry in failed:
        for leg in entry.legs:
            causes.setdefault(leg.target, leg.hangup_cause)
    return causes


def examine(
    config: Config,
    did: str,
    now: datetime,
    failed: Sequence[CallLogEntry],
    presence: Presence,
    dnd: set[str],
    *,
    billed: Sequence[Billable] = (),
    calls_in_progress: int = 0,
) -> Diagnosis:
    """The diagnosis of `did` at `now` from facts already read: pure. `billed` is what the
    number used this month and `calls_in_progress` its calls now (for its plan)."""
    number = config.number(did)
    if number is None:
        facts = Facts(did, in_inventory=False, presence_error=presence.error)
        zone = zone_of(did) or "UTC"
        return Diagnosis(facts, "", zone, now, presence, tuple(failed), verdict(facts))
    tz = ZoneInfo(number.timezone)
    route = config.route_for(did)
    plan = config.plan_of_number.get(did)
    check = plan_check(plan, billed, calls_in_progress, now) if plan is not None else None
    limited = check is not None and check.inbound_refused is not None
    reserved = number.status is NumberStatus.RESERVED
    flow = None if reserved else plan_now(config, number, now, at_limit=limited)
    causes = last_causes(failed)
    # The route's targets, then any other the flow reaches (a goto, the plan's at_limit).
    rung = [rt.target for rt in (route.targets if route else ())]
    named = {t.name for t in rung}
    reached = [config.targets.get(n) for n in (flow.ringing if flow else ()) if n not in named]
    rung += [t for t in reached if t is not None]
    targets = tuple(_target_check(t, presence, dnd, causes) for t in rung)
    facts = Facts(
        number=did,
        in_inventory=True,
        status=str(number.status),
        port_date=number.port_date,
        days_to_port=(number.port_date - now.astimezone(tz).date()).days
        if number.port_date
        else None,
        losing_carrier=number.losing_carrier,
        route=route.name if route else None,
        flow=flow,
        targets=targets,
        failed_calls=len(failed),
        presence_error=presence.error,
        plan=check,
    )
    return Diagnosis(
        facts, number.label, number.timezone, now, presence, tuple(failed), verdict(facts)
    )


def _target_check(
    target: Target, presence: Presence, dnd: set[str], causes: Mapping[str, int | None]
) -> TargetCheck:
    endpoint = target.endpoint
    state = presence.state(endpoint) if endpoint else None
    return TargetCheck(
        target.name, target.kind, endpoint, state, target.name in dnd, causes.get(target.name)
    )


async def diagnose(
    config: Config,
    engine: AsyncEngine,
    did: str,
    now: datetime,
    presence: Presence,
    dnd: set[str],
    *,
    failed_calls: int = FAILED_CALLS_SHOWN,
) -> Diagnosis:
    """Read the last failed calls of `did` (before `now`) and, when it has a plan, what it
    used this month and its calls in progress; then `examine`."""
    failed = await queries.last_failed_calls(engine, did, limit=failed_calls, until=now)
    number = config.number(did)
    billed: list[Billable] = []
    calls = 0
    if number is not None and did in config.plan_of_number:
        since, until = month_of(now, ZoneInfo(number.timezone))
        async with engine.connect() as conn:
            billed = in_window(await usage.billables(conn, did, since, until), since, until)
            calls = len(await usage.calls_in_progress(conn, did, now))
    return examine(config, did, now, failed, presence, dnd, billed=billed, calls_in_progress=calls)


# ------------------------------------------------------------------ showing it


def failed_call_json(entry: CallLogEntry, tz: ZoneInfo) -> dict[str, Any]:
    """A failed call as support reads it: called, calling, local date/time/zone, causes."""
    call = entry.call
    local = call.started_at.astimezone(tz)
    return {
        "call_id": call.call_id,
        "called": call.did,
        "calling": call.caller_number,
        "trunk": call.trunk,
        "date": local.date().isoformat(),
        "time": local.strftime("%H:%M:%S"),
        "time_zone": f"{tz.key} ({local.tzname()})",
        "disposition": str(call.disposition) if call.disposition else None,
        "hangup_cause": hangup_cause_text(call.hangup_cause),
        "legs": [
            {
                "target": leg.target,
                "outcome": leg_outcome(leg),
                "cause": hangup_cause_text(leg.hangup_cause),
            }
            for leg in entry.legs
        ],
    }


def diagnosis_json(d: Diagnosis) -> dict[str, Any]:
    """The diagnosis as the API returns it (and `pbxd diagnose --json` prints)."""
    f = d.facts
    tz = ZoneInfo(d.time_zone)
    flow = f.flow
    softphones = [t for t in f.targets if t.endpoint]
    return {
        "number": f.number,
        "in_inventory": f.in_inventory,
        "label": d.label,
        "status": f.status,
        "port_date": f.port_date.isoformat() if f.port_date else None,
        "days_to_port": f.days_to_port,
        "losing_carrier": f.losing_carrier,
        "route": f.route,
        "time_zone": d.time_zone,
        "checked_at": d.checked_at.astimezone(tz).isoformat(timespec="seconds"),
        "open_now": flow.open_now if flow else None,
        "flow_now": list(flow.steps) if flow else [],
        "targets": [
            {
                "target": t.name,
                "kind": t.kind,
                "endpoint": t.endpoint,
                "presence": t.presence,
                "do_not_disturb": t.dnd,
                "rings_now": flow is not None and t.name in flow.ringing,
                "last_cause": hangup_cause_text(t.last_cause) if t.last_cause else None,
            }
            for t in f.targets
        ],
        "endpoints_online": (
            None
            if d.presence.states is None
            else {t.endpoint: t.presence for t in softphones if t.endpoint}
        ),
        "presence_source": d.presence.source or None,
        "presence_error": d.presence.error,
        "last_failed_calls": [failed_call_json(e, tz) for e in d.failed],
        "plan": plan_check_json(f.plan) if f.plan else None,
        "verdict": d.verdict,
    }


def plan_check_json(plan: PlanCheck) -> dict[str, Any]:
    """The plan's state as the API shows it: this month's seconds against the allowances."""
    # The month's totals as the report's `usage` gives them (the days are the report's).
    month = PlanUsage(plan.name, plan.used, plan.allowed, {}).to_json()
    del month["days"]
    return {
        **month,
        "calls_in_progress": plan.calls_in_progress,
        "max_calls": plan.max_calls,
        "inbound_refused": plan.inbound_refused,
        "outbound_refused": plan.outbound_refused,
    }


def plan_text(plan: PlanCheck) -> str:
    """`plan reception: forwarded 12:00 of 600 min, outbound 600:00 of 600 min, 1 call now`."""

    def kind(k: UsageKind) -> str:
        used, allowed = plan.used[k], plan.allowed[k]
        limit = "unlimited" if allowed is None else f"{allowed // 60} min"
        return f"{k} {used // 60}:{used % 60:02d} of {limit}"

    calls = f"{plan.calls_in_progress} call(s) now"
    if plan.max_calls is not None:
        calls += f" of {plan.max_calls}"
    return f"plan {plan.name}: {kind(UsageKind.FORWARDED)}, {kind(UsageKind.OUTBOUND)}, {calls}"


def format_text(d: Diagnosis) -> str:
    """The diagnosis for a terminal: the checklist, one answer a line, then the verdict."""
    f = d.facts
    tz = ZoneInfo(d.time_zone)
    label = f" ({d.label})" if d.label else ""
    lines = [f"{f.number}{label}, checked {d.checked_at.astimezone(tz):%Y-%m-%d %H:%M %Z}"]
    if not f.in_inventory:
        lines.append("in the inventory: no")
    else:
        status = str(f.status)
        if f.status == NumberStatus.PORTING:
            status += f", port date {f.port_date or 'not set'}"
            if f.days_to_port is not None:
                status += f" ({f.days_to_port} day(s) left)"
            if f.losing_carrier:
                status += f", losing carrier {f.losing_carrier}"
        lines += ["in the inventory: yes", f"status: {status}", f"route: {f.route or 'none'}"]
        if f.flow is not None:
            lines.append(f"a call now goes: {' → '.join(f.flow.steps)}")
            if f.flow.rejected:
                lines.append(f"  refused: {f.flow.rejected}")
        for t in f.targets:
            rings = "" if f.flow is None or t.name in f.flow.ringing else " (not rung now)"
            if t.endpoint:
                what = f"softphone {t.endpoint}: {t.presence or 'presence not known'}"
            else:
                cause = hangup_cause_text(t.last_cause) if t.last_cause else "no failed leg seen"
                what = f"external: last failed leg {cause}"
            dnd = ", do-not-disturb" if t.dnd else ""
            lines.append(f"  target {t.name}: {what}{dnd}{rings}")
        if f.plan is not None:
            lines.append(plan_text(f.plan))
        if d.presence.states is None:
            lines.append(f"presence: {d.presence.error}")
        elif d.presence.source:
            lines.append(f"presence: from {d.presence.source}")
    lines.append(f"last failed calls: {len(d.failed) or 'none'}")
    for entry in d.failed:
        c = failed_call_json(entry, tz)
        legs = "; ".join(f"{leg['target']} {leg['outcome']} {leg['cause']}" for leg in c["legs"])
        lines.append(
            f"  {c['date']} {c['time']} {c['time_zone']}: {c['calling'] or 'anonymous'} → "
            f"{c['called']}, {c['disposition']}, cause {c['hangup_cause']}"
            + (f"; legs: {legs}" if legs else "; no leg")
        )
    lines.append(f"verdict: {d.verdict}")
    return "\n".join(lines) + "\n"
