"""The routing decision for one inbound call: pure, no I/O, no clock of its own.

`plan_call(facts, config)` says what to do with a call: a `Flow` (ring these legs, for how
long, with which caller ID, then where to go on no answer, busy or unavailable) — or reject
it, with the cause to give the carrier and the reason to log. `facts.now` is the moment the
caller gives it; the planner never reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from sys import intern

import phonenumbers

from pbxd.config.destinations import DEFAULT_MAX_CALL_DURATION
from pbxd.config.files import FallbackAction, NumberStatus
from pbxd.config.model import (
    Config,
    Fallback,
    Menu,
    RingTarget,
    Route,
    Trunk,
    VirtualNumber,
    hangup,
)
from pbxd.config.numbering import canonical_e164
from pbxd.dialplan.callerid import presented_identity
from pbxd.dialplan.flow import (
    CallOut,
    Flow,
    FlowLimits,
    GotoStep,
    HangupStep,
    LegPlan,
    MenuStep,
    PlayStep,
    RingStep,
    ScheduleStep,
    Step,
    VoicemailStep,
)
from pbxd.dialplan.presentation import Presentation, presentation_of_stasis_args
from pbxd.dialplan.tollfraud import endpoint_refusal
from pbxd.vocabulary import HangupReason

# The first Stasis argument of a call a softphone places (`Stasis(pbxd,outbound,...)`):
# the dialplan says which way a call goes, pbxd never guesses it from the channel.
OUTBOUND_MARK = "outbound"
# The second Stasis argument of an inbound call whose dialplan ran Ringing() just before
# (`Stasis(pbxd,${CALLERID(pres)},ringing)`): the caller hears ringing already.
RINGING_MARK = "ringing"


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What Asterisk tells us about an inbound call when it enters Stasis.

    `stasis_args` are StasisStart's `args`: the shipped dialplan passes the caller's
    presentation first (`Stasis(pbxd,${CALLERID(pres)},ringing)`); none means allowed.
    """

    channel_id: str
    channel_name: str
    called: str
    caller_number: str
    caller_name: str
    stasis_args: tuple[str, ...] = ()
    now: datetime | None = None  # when the call arrived (the caller's clock, never read here)

    @property
    def presentation(self) -> Presentation:
        """The caller's presentation (CALLERID(pres)), as the dialplan passed it."""
        return presentation_of_stasis_args(self.stasis_args)

    @property
    def rung_by_dialplan(self) -> bool:
        """True when the dialplan indicated ringing (Ringing()) before handing the call over."""
        args = self.stasis_args
        return len(args) >= 2 and args[0] != OUTBOUND_MARK and args[1] == RINGING_MARK


class RejectWhy(StrEnum):
    """Why a call is refused without ringing anyone (logged and kept in the CDR)."""

    UNKNOWN_NUMBER = "unknown_number"
    RESERVED_NUMBER = "reserved_number"
    NO_ROUTE = "no_route"
    # Calls going out (`pbxd.dialplan.outbound`), refused before any channel is created.
    NOT_ALLOWED_OUT = "not_allowed_out"  # a softphone no `outbound:` entry names
    BAD_NUMBER = "bad_number"  # what was dialled is not a phone number
    FORBIDDEN_DESTINATION = "forbidden_destination"  # outside the allowlist, or denied


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the call with `reason` (a hangup reason the carrier understands)."""

    did: str
    trunk: str | None
    why: RejectWhy
    reason: HangupReason
    caller_number: str
    caller_name: str
    caller_withheld: bool = False
    cause: int | None = None  # a Q.850 cause instead of `reason`'s (52: outgoing call barred)
    detail: str = ""  # why, in words, when the kind of refusal is not enough
    call_out: CallOut | None = None  # a softphone calling out (None: an inbound call)

    @property
    def message(self) -> str:
        """A sentence for the log and the call timeline."""
        if self.detail:
            return self.detail
        return {
            RejectWhy.UNKNOWN_NUMBER: f"{self.did} is not one of our numbers",
            RejectWhy.RESERVED_NUMBER: f"{self.did} is reserved, not in service",
            RejectWhy.NO_ROUTE: f"{self.did} has no route",
        }[self.why]


Decision = Flow | Reject

# Step names of a route written the way routes are today: ring, then hang up on each outcome.
RING_STEP = "ring"
NO_ANSWER_STEP = "no_answer"
BUSY_STEP = "busy"
UNAVAILABLE_STEP = "unavailable"
MENU_STEP = "menu"
PLAN_LIMIT_STEP = "plan_limit"  # where a call goes when its number's plan is used up


def branch_label(branch: Fallback) -> str:
    """What the call log calls a menu branch: the route's name, `voicemail BOX`, `hangup`."""
    if branch.action is FallbackAction.GOTO and branch.route:
        return branch.route
    if branch.action is FallbackAction.VOICEMAIL and branch.mailbox:
        return f"voicemail {branch.mailbox}"
    return "hangup"


def endpoint_of_channel(channel_name: str) -> str:
    """`PJSIP/trunk-in-0000001c` -> `trunk-in` (Asterisk appends a sequence number)."""
    _, _, rest = channel_name.partition("/")
    base, sep, suffix = rest.rpartition("-")
    if sep and len(suffix) == 8 and all(c in "0123456789abcdef" for c in suffix):
        return base
    return rest


@lru_cache(maxsize=4096)  # the same callers and DIDs come back all day; parsing is ~30 µs
def normalise_number(raw: str, country: str | None) -> str | None:
    """A number as a carrier sends it (E.164, national, 00-international) -> E.164, or None."""
    text = raw.strip()
    if not text:
        return None
    compact = canonical_e164(text)
    if compact is not None:
        # E.164 has at most 15 digits; anything longer is junk, not a number to present.
        if len(compact) > 16:
            return None
        try:
            parsed = phonenumbers.parse(compact, None)
        except phonenumbers.NumberParseException:
            return None
        return compact if phonenumbers.is_possible_number(parsed) else None
    digits = "".join(c for c in text if c.isdigit())
    if not digits or digits != text.replace(" ", "").replace("-", ""):
        return None  # letters, `anonymous`, SIP junk: not a number
    try:
        parsed = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def presented_caller(facts: CallFacts, country: str | None) -> tuple[str, str]:
    """The caller's number in E.164 when it is one, else as sent (cleaned); and their name."""
    number = normalise_number(facts.caller_number, country)
    if number is None:
        cleaned = "".join(c for c in facts.caller_number if c.isprintable())[:40]
        number = cleaned or "anonymous"
    name = "".join(c for c in facts.caller_name if c.isprintable())[:80]
    return number, name


def max_call_duration(route: Route | None, via: Trunk | None) -> int:
    """How long a leg may last answered: the shorter of the route's and its trunk's limits.

    A trunk's limit caps what its carrier may bill, whatever the route says; with neither
    set, 4 hours.
    """
    limits = [route.max_call_duration if route else None, via.max_call_duration if via else None]
    return min((s for s in limits if s is not None), default=DEFAULT_MAX_CALL_DURATION)


def plan_call(facts: CallFacts, config: Config) -> Decision:
    """Decide what to do with a call: one going out when the dialplan says so, else inbound."""
    if facts.stasis_args[:1] == (OUTBOUND_MARK,):
        from pbxd.dialplan.outbound import plan_outbound  # it builds on this module

        return plan_outbound(facts, config)
    return plan_inbound(facts, config)


def plan_inbound(facts: CallFacts, config: Config) -> Decision:
    """Decide what to do with an inbound call."""
    trunk: Trunk | None = config.trunk_for_endpoint(endpoint_of_channel(facts.channel_name))
    country = trunk.country if trunk else None
    caller_number, caller_name = presented_caller(facts, country)
    did = normalise_number(facts.called, country) or facts.called
    trunk_name = trunk.name if trunk else None
    presentation = facts.presentation
    withheld = presentation.withheld

    def reject(why: RejectWhy) -> Reject:
        return Reject(
            did, trunk_name, why, HangupReason.UNALLOCATED, caller_number, caller_name, withheld
        )

    number = config.number(did)
    if number is None:
        return reject(RejectWhy.UNKNOWN_NUMBER)
    if number.status is NumberStatus.RESERVED:
        return reject(RejectWhy.RESERVED_NUMBER)
    if config.call_through is not None and did in config.call_through.numbers:
        from pbxd.dialplan.outbound import call_through_flow  # it builds on this module

        return call_through_flow(did, trunk_name, caller_number, caller_name, withheld, config)
    route = config.route_for(did)
    if route is None:
        return reject(RejectWhy.NO_ROUTE)

    def legs_of(ringing: Route) -> tuple[LegPlan, ...]:
        # A target written several times alike (a hunt going round: alice, bob, alice, bob…)
        # is planned once per call: its legs share one frozen LegPlan.
        planned: dict[tuple[object, ...], LegPlan] = {}
        legs = []
        for ring in ringing.targets:
            if not ring.enabled:
                continue
            alike = (
                id(ring.target),
                id(ring.caller_id),
                ring.ring_time,
                ring.confirm,
                ring.start_after,
                ring.weight,
            )
            plan = planned.get(alike)
            if plan is None:
                plan = planned[alike] = leg_plan(
                    config, ringing, ring, number, caller_number, caller_name, presentation
                )
            legs.append(plan)
        return tuple(legs)

    builder = _FlowBuilder(config, legs_of, number.timezone)
    start = builder.route(route)
    plan = config.plan_of_number.get(did)
    limits = None
    if plan is not None:
        limits = FlowLimits(plan, False, builder.fallback(plan.at_limit, PLAN_LIMIT_STEP, ""))
    return Flow(
        did=did,
        trunk=trunk_name,
        route=route.name,
        start=start,
        steps=builder.steps,
        caller_number=caller_number,
        caller_name=caller_name,
        caller_withheld=withheld,
        timezone=number.timezone,
        limits=limits,
    )


def leg_plan(
    config: Config,
    route: Route,
    ring: RingTarget,
    number: VirtualNumber,
    caller_number: str,
    caller_name: str,
    presentation: Presentation,
) -> LegPlan:
    """One leg of a route: its dial string, ring time and the caller ID it shows.

    The caller-ID policy is the route entry's, else the target's, else the route's. The
    whisper is the route's own, or the called number's (`whisper: number`).
    """
    did, label = number.e164, number.label
    identity = presented_identity(
        ring.caller_id or ring.target.caller_id or route.caller_id,
        did=did,
        label=label,
        caller_number=caller_number,
        caller_name=caller_name,
        presentation=presentation,
        softphone=ring.target.endpoint is not None,
    )
    via = config.trunks.get(ring.target.trunk) if ring.target.trunk else None
    dial_string = config.dial_string(ring.target)
    return LegPlan(
        target=ring.target.name,
        dial_string=dial_string,
        trunk=ring.target.trunk,
        ring_time=min(ring.ring_time, route.timeout),
        caller_id_number=identity.number,
        caller_id_name=identity.name,
        caller_id_presentation=identity.presentation,
        max_duration=max_call_duration(route, via),
        via=via,
        barred=endpoint_refusal(dial_string, via),
        whisper=number.whisper if route.whisper_number else route.whisper,
        confirm=route.confirm_prompt if ring.confirm else (),
        start_after=ring.start_after,
        weight=ring.weight,
    )


@lru_cache(maxsize=1024)
def _hangup_step(name: str, reason: HangupReason) -> HangupStep:
    """A fallback's hangup step, frozen and the same for every call: one object, shared."""
    return HangupStep(name, reason)


class _FlowBuilder:
    """Turns a route (and the routes its `goto`s reach) into the steps of one flow.

    A route's steps are named `hours`, `greeting`, `ring` and the fallback keys
    (`closed`, `no_answer`, `busy`, `unavailable`, `then`); a route reached by a `goto` is
    copied in under `<route>/<step>` names, each route once (a goto back reuses it).
    """

    def __init__(
        self, config: Config, legs_of: Callable[[Route], tuple[LegPlan, ...]], timezone: str
    ) -> None:
        self.config = config
        self.legs_of = legs_of
        self.timezone = timezone
        self.steps: dict[str, Step] = {}
        self.starts: dict[str, str] = {}  # route name -> the name of its first step

    def route(self, route: Route, prefix: str = "") -> str:
        """Add `route`'s steps; the name of its first step."""
        if route.name in self.starts:
            return self.starts[route.name]
        # Interned, like every step name below: each call's flow names its steps alike, so
        # the calls in progress share one copy of each name.
        names = {key: intern(prefix + key) for key in ("hours", "greeting", RING_STEP, MENU_STEP)}
        # What follows the greeting: the menu, the ringing, or (no one to ring) `then`.
        if route.menu is not None:
            after_greeting = names[MENU_STEP]
        elif route.targets:
            after_greeting = names[RING_STEP]
        else:
            after_greeting = intern(f"{prefix}then")
        after_hours = names["greeting"] if route.greeting is not None else after_greeting
        first = names["hours"] if route.hours is not None else after_hours
        self.starts[route.name] = first
        if route.menu is None and not route.targets:
            self.fallback(route.then or hangup(HangupReason.NORMAL), after_greeting, prefix)
        if route.hours is not None:
            closed = self.fallback(
                route.closed or hangup(HangupReason.NORMAL), f"{prefix}closed", prefix
            )
            self.steps[names["hours"]] = ScheduleStep(
                names["hours"], route.hours.in_zone(self.timezone), after_hours, closed
            )
        if route.greeting is not None:
            self.steps[names["greeting"]] = PlayStep(
                names["greeting"], route.greeting.prompts, route.greeting.answer, after_greeting
            )
        if route.menu is not None:
            self.steps[names[MENU_STEP]] = self.menu(route.menu, names[MENU_STEP], prefix)
        elif route.targets:
            self.steps[names[RING_STEP]] = RingStep(
                name=names[RING_STEP],
                strategy=route.strategy,
                legs=self.legs_of(route),
                timeout=route.timeout,
                no_answer=self.fallback(route.no_answer, f"{prefix}{NO_ANSWER_STEP}", prefix),
                busy=self.fallback(route.busy, f"{prefix}{BUSY_STEP}", prefix),
                unavailable=self.fallback(route.unavailable, f"{prefix}{UNAVAILABLE_STEP}", prefix),
                max_legs=route.max_legs,
                skip_busy=route.skip_busy,
                memory=route.name,
            )
        return first

    def menu(self, menu: Menu, name: str, prefix: str) -> MenuStep:
        """A menu step; each option's branch is a step of its own (`menu/2`)."""
        choices = {
            entry: self.fallback(branch, f"{name}/{entry}", prefix)
            for entry, branch in menu.options.items()
        }
        return MenuStep(
            name=name,
            prompts=menu.prompts,
            choices=choices,
            labels={entry: branch_label(branch) for entry, branch in menu.options.items()},
            repeat=menu.repeat,
            timeout=menu.timeout,
            digit_timeout=menu.digit_timeout,
            retries=menu.retries,
            invalid_prompts=menu.invalid_prompts,
            timeout_prompts=menu.timeout_prompts,
            fallback=self.fallback(menu.fallback, f"{name}/fallback", prefix),
        )

    def fallback(self, fallback: Fallback, name: str, prefix: str) -> str:
        """Add the step a fallback is; its name."""
        name = intern(name)
        if fallback.action is FallbackAction.VOICEMAIL:
            box = self.config.mailboxes.get(fallback.mailbox or "")
            if box is not None:
                self.steps[name] = VoicemailStep(name, box)
                return name
        if fallback.action is FallbackAction.GOTO:
            target = self.config.routes.get(fallback.route or "")
            if target is not None:
                self.steps[name] = GotoStep(name, self.route(target, f"{target.name}/"))
                return name
        # `pbxd check` refuses a box or route that does not exist; never strand a caller.
        self.steps[name] = _hangup_step(name, fallback.cause)
        return name
