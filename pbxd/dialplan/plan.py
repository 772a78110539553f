"""The routing decision for one inbound call: pure, no I/O, no clock.

`plan_call(facts, config)` says what to do with a call: ring these legs, when, for how long,
with which caller ID — or reject it, with the cause to give the carrier and the reason to log.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import phonenumbers

from pbxd.config.destinations import DEFAULT_MAX_CALL_DURATION
from pbxd.config.files import CallerIdPolicy, HangupReason, NumberStatus, RingStrategy
from pbxd.config.model import Config, Route, Trunk
from pbxd.config.numbering import canonical_e164
from pbxd.dialplan.presentation import Presentation, presentation_of_stasis_args
from pbxd.dialplan.tollfraud import endpoint_refusal

# What a softphone leg shows for a withheld caller (RFC 3261 8.1.1.3's anonymous From).
ANONYMOUS_NUMBER = "anonymous"
ANONYMOUS_NAME = "Anonymous"


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What Asterisk tells us about an inbound call when it enters Stasis.

    `stasis_args` are StasisStart's `args`: the shipped dialplan passes the caller's
    presentation first (`Stasis(pbxd,${CALLERID(pres)})`); none means allowed.
    """

    channel_id: str
    channel_name: str
    called: str
    caller_number: str
    caller_name: str
    stasis_args: tuple[str, ...] = ()

    @property
    def presentation(self) -> Presentation:
        """The caller's presentation (CALLERID(pres)), as the dialplan passed it."""
        return presentation_of_stasis_args(self.stasis_args)


@dataclass(frozen=True, slots=True)
class LegPlan:
    """One outbound leg to ring: where, when, and for how long.

    `ring_time` is the target's own ring time (at most the route timeout); `start_after` is
    when its turn comes if every earlier hunt target rings its full time (it may be past
    the route timeout). The controller starts a hunt leg as soon as the previous one ends
    and caps its ring time by what is left of the route timeout at that moment.
    """

    target: str
    dial_string: str
    trunk: str | None
    start_after: int
    ring_time: int
    caller_id_number: str
    caller_id_name: str
    # Set as CONNECTEDLINE(pres) when not allowed: chan_pjsip then keeps it out of From/PAI.
    caller_id_presentation: Presentation = Presentation.ALLOWED_NOT_SCREENED
    # Hang the leg up after this long answered (toll fraud, forgotten calls); seconds.
    max_duration: int = DEFAULT_MAX_CALL_DURATION
    # The trunk's rules, so the check just before channels/create needs no configuration.
    via: Trunk | None = None
    # Why the planner refused this leg (it is logged, never dialled); None: it may be placed.
    barred: str | None = None


@dataclass(frozen=True, slots=True)
class RingPlan:
    """Ring the legs; give up after `timeout` seconds with `no_answer_reason`."""

    did: str
    trunk: str | None
    route: str
    strategy: RingStrategy
    legs: tuple[LegPlan, ...]
    timeout: int
    no_answer_reason: HangupReason
    caller_number: str
    caller_name: str
    caller_withheld: bool = False  # the caller withheld their number (kept in CDR anyway)


class RejectWhy(StrEnum):
    """Why a call is refused without ringing anyone (logged and kept in the CDR)."""

    UNKNOWN_NUMBER = "unknown_number"
    RESERVED_NUMBER = "reserved_number"
    NO_ROUTE = "no_route"


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

    @property
    def message(self) -> str:
        """A sentence for the log and the call timeline."""
        return {
            RejectWhy.UNKNOWN_NUMBER: f"{self.did} is not one of our numbers",
            RejectWhy.RESERVED_NUMBER: f"{self.did} is reserved, not in service",
            RejectWhy.NO_ROUTE: f"{self.did} has no route",
        }[self.why]


Decision = RingPlan | Reject


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
    route = config.route_for(did)
    if route is None:
        return reject(RejectWhy.NO_ROUTE)

    legs: list[LegPlan] = []
    start = 0
    for ring in route.targets:
        if route.caller_id is CallerIdPolicy.NUMBER:
            # Our DID is shown, allowed; a withheld caller's name is not ours to show.
            cid_number = did
            cid_name = number.label or ("" if withheld else caller_name)
            cid_presentation = Presentation.ALLOWED_NOT_SCREENED
        elif withheld and ring.target.endpoint is not None:
            # Our own phone: no need for the number (the CDR has it), and a phone whose
            # endpoint trusts outbound identity or ignores Privacy cannot leak it.
            cid_number, cid_name, cid_presentation = ANONYMOUS_NUMBER, ANONYMOUS_NAME, presentation
        else:
            # A carrier needs the real identity (billing, emergency, tracing): it goes in
            # PAI with `Privacy: id` and the carrier withholds it from the callee.
            cid_number, cid_name, cid_presentation = caller_number, caller_name, presentation
        via = config.trunks.get(ring.target.trunk) if ring.target.trunk else None
        dial_string = config.dial_string(ring.target)
        # Even past the route timeout on paper: earlier targets that are busy or offline
        # end at once and leave time for this one.
        legs.append(
            LegPlan(
                target=ring.target.name,
                dial_string=dial_string,
                trunk=ring.target.trunk,
                start_after=start,
                ring_time=min(ring.ring_time, route.timeout),
                caller_id_number=cid_number,
                caller_id_name=cid_name,
                caller_id_presentation=cid_presentation,
                max_duration=max_call_duration(route, via),
                via=via,
                barred=endpoint_refusal(dial_string, via),
            )
        )
        if route.strategy is RingStrategy.HUNT:
            start += ring.ring_time
    return RingPlan(
        did=did,
        trunk=trunk_name,
        route=route.name,
        strategy=route.strategy,
        legs=tuple(legs),
        timeout=route.timeout,
        no_answer_reason=route.no_answer_cause,
        caller_number=caller_number,
        caller_name=caller_name,
        caller_withheld=withheld,
    )
