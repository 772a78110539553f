"""A call flow: what to do with one inbound call, as a small graph of typed steps (pure data).

The planner (`pbxd.dialplan.plan`) turns call facts, the configuration and `now` into a
`Flow`; the call session (`pbxd.calls`) runs it step by step. Each step names the steps that
follow it by outcome, so "where did this call go?" is a walk over data, and `pbxd check`
can find loops, dead ends and unreachable steps without running anything.

Step names are unique within a flow. A `goto` into another route is resolved by the planner:
that route's steps are copied in under `<route>/<step>` names, so the session never needs
the configuration at run time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

# The step vocabulary is the call log's too (a CDR path is kind:outcome steps): one enum each.
from pbxd.cdr.records import StepKind as StepKind
from pbxd.cdr.records import StepOutcome as StepOutcome
from pbxd.config.destinations import bare_softphone
from pbxd.dialplan.presentation import Presentation
from pbxd.vocabulary import HangupReason, RingStrategy

if TYPE_CHECKING:
    from pbxd.config.model import CallingOut, Plan, Trunk

StepName = str


class OpenHours(Protocol):
    """Opening hours of a number, in its own time zone (see `pbxd.dialplan.hours`)."""

    def is_open(self, at: datetime) -> bool:
        """Whether the line is open at the aware instant `at`."""
        ...


@dataclass(frozen=True, slots=True)
class LegPlan:
    """One outbound leg to ring: where, for how long, and with which caller ID.

    `ring_time` is the target's own ring time (at most the step's timeout). A hunt starts
    each leg when the previous one ends and caps its ring time by what is left of the
    step's timeout at that moment.
    """

    target: str
    dial_string: str
    trunk: str | None
    ring_time: int
    caller_id_number: str
    caller_id_name: str
    # Set as CONNECTEDLINE(pres) when not allowed: chan_pjsip then keeps it out of From/PAI.
    caller_id_presentation: Presentation = Presentation.ALLOWED_NOT_SCREENED
    # Hang the leg up after this long answered (toll fraud, forgotten calls); seconds.
    max_duration: int = 4 * 3600
    # The trunk's rules, so `tollfraud.leg_refusal` needs no configuration at run time.
    via: Trunk | None = None
    # Why the planner refused this leg (recorded with cause 52, never dialled).
    barred: str | None = None
    # Played to the callee when they answer, before bridging (the caller hears ringing).
    whisper: tuple[str, ...] = ()
    # Confirm calls: these prompts, then bridged only if the callee presses 1.
    confirm: tuple[str, ...] = ()
    # An emergency call (112, 15, 999...) in this region: dialled as the short number.
    emergency_region: str | None = None
    # Staggered ringing: seconds after the step started before this leg joins.
    start_after: int = 0
    # Weighted ringing: how likely this target comes first, relative to the others.
    weight: int = 1

    @property
    def softphone(self) -> str | None:
        """The endpoint (`PJSIP/alice`) of a softphone leg, whose presence pbxd follows."""
        bare = self.trunk is None and self.via is None and bare_softphone(self.dial_string)
        return self.dial_string if bare else None


@dataclass(frozen=True, slots=True)
class ScheduleStep:
    """Branch on the number's opening hours at the moment the step is entered."""

    name: StepName
    hours: OpenHours
    open: StepName
    closed: StepName
    kind: StepKind = field(default=StepKind.SCHEDULE, init=False)

    def exits(self) -> dict[StepOutcome, StepName]:
        """The step each outcome leads to."""
        return {StepOutcome.OPEN: self.open, StepOutcome.CLOSED: self.closed}


@dataclass(frozen=True, slots=True)
class PlayStep:
    """Play prompts (media URIs such as `sound:acme-welcome`) to the caller, then go on.

    With `answer` false the prompts go out as early media (183 Session Progress): the caller
    hears them without being answered, so without being billed.
    """

    name: StepName
    prompts: tuple[str, ...]
    answer: bool
    next: StepName
    kind: StepKind = field(default=StepKind.PLAY, init=False)

    def exits(self) -> dict[StepOutcome, StepName]:
        """The step each outcome leads to."""
        return {StepOutcome.PLAYED: self.next}


@dataclass(frozen=True, slots=True)
class RingStep:
    """Ring legs with a strategy; on no answer, busy or unavailable go to another step."""

    name: StepName
    strategy: RingStrategy
    legs: tuple[LegPlan, ...]
    timeout: int
    no_answer: StepName
    busy: StepName
    unavailable: StepName
    # Bridge the caller with each leg before dialling it, so the far end's early media
    # (ringback, a carrier's announcement) reaches the caller: a call going out.
    early_media: bool = False
    max_legs: int | None = None  # at most this many legs ringing at once (None: no limit)
    skip_busy: bool = False  # a target already on a pbxd call is not rung
    memory: str = ""  # whose turn it is is kept under this key (the route's name)
    kind: StepKind = field(default=StepKind.RING, init=False)

    def exits(self) -> dict[StepOutcome, StepName]:
        """The step each outcome leads to (an answered call ends in its bridge)."""
        return {
            StepOutcome.NO_ANSWER: self.no_answer,
            StepOutcome.BUSY: self.busy,
            StepOutcome.UNAVAILABLE: self.unavailable,
        }


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A voicemail box: where messages go and how they are taken."""

    name: str
    email: str | None = None
    greeting: tuple[str, ...] = ()  # empty: the default greeting of `language`
    language: str = "en"
    max_seconds: int = 180
    min_seconds: int = 2
    silence_seconds: int = 5
    finish_key: str = "#"


@dataclass(frozen=True, slots=True)
class VoicemailStep:
    """Greeting, beep, recording; the call ends after it."""

    name: StepName
    mailbox: Mailbox
    kind: StepKind = field(default=StepKind.VOICEMAIL, init=False)

    def exits(self) -> dict[StepOutcome, StepName]:
        """A voicemail ends the call: no step follows."""
        return {}


@dataclass(frozen=True, slots=True)
class GotoStep:
    """Go on at another step (of this route, or of another route copied into the flow)."""

    name: StepName
    target: StepName
    kind: StepKind = field(default=StepKind.GOTO, init=False)

    def exits(self) -> dict[StepOutcome, StepName]:
        """The step each outcome leads to."""
        return {StepOutcome.JUMPED: self.target}


@dataclass(frozen=True, slots=True)
class HangupStep:
    """End the call with a reason the carrier understands."""

    name: StepName
    reason: HangupReason
    # Give the caller the Q.850 cause its last leg ended with (a carrier's 404, 503...),
    # not `reason`'s: a softphone calling out shows the far end's own failure.
    leg_cause: bool = False
    kind: StepKind = field(default=StepKind.HANGUP, init=False)

    def exits(self) -> dict[StepOutcome, StepName]:
        """A hangup ends the call: no step follows."""
        return {}


@dataclass(frozen=True, slots=True)
class MenuStep:
    """A voice menu: a prompt, then the caller's keys choose a branch (`pbxd.ivr.menu`).

    `choices` maps an entry (`"2"`, `"12"`, `"*"`) to the step it leads to, `labels` to what
    the call log calls that branch (`support`, `voicemail sales`); `repeat` entries play the
    menu again. After `retries` invalid or silent tries the menu goes to `fallback`.
    """

    name: StepName
    prompts: tuple[str, ...]
    choices: Mapping[str, StepName]
    labels: Mapping[str, str]
    repeat: frozenset[str]
    timeout: int
    digit_timeout: int
    retries: int
    invalid_prompts: tuple[str, ...]
    timeout_prompts: tuple[str, ...]
    fallback: StepName
    kind: StepKind = field(default=StepKind.MENU, init=False)

    def exits(self) -> dict[StepOutcome, StepName]:
        """Where giving up leads (each chosen entry leads to its own step: `choices`)."""
        return {StepOutcome.TIMEOUT: self.fallback, StepOutcome.INVALID: self.fallback}

    def following(self) -> list[StepName]:
        """Every step the menu may lead to."""
        return [*self.choices.values(), self.fallback]


@dataclass(frozen=True, slots=True)
class CallOut:
    """What a call going out adds to the call log: who dialled what, presented as what."""

    user: str  # the `outbound:` entry the softphone calls out under
    dialled: str  # E.164, or the short number of an emergency call
    presented: str  # the caller ID the carrier gets
    emergency: bool = False  # never counted against a plan, never withheld


@dataclass(frozen=True, slots=True)
class FlowLimits:
    """The called (or presented) number's plan, and the step a call goes to at its limit."""

    plan: Plan
    outbound: bool  # counts against outbound minutes (else forwarded legs' minutes)
    at_limit: StepName


@dataclass(frozen=True, slots=True)
class CallThroughUser:
    """What a registered mobile may do when it calls through (from `outbound:`)."""

    rights: CallingOut
    trunk: Trunk
    plan: Plan | None
    timezone: str


@dataclass(frozen=True, slots=True)
class CallThroughStep:
    """Answer a registered mobile, take its PIN and the number it calls, `#` after each."""

    name: StepName
    users: Mapping[str, CallThroughUser]  # the caller's E.164 -> what it may do
    out: StepName  # the ring step the call goes to (filled in once the number is keyed)
    refused: StepName
    timeout: int = 15
    tone: tuple[str, ...] = ("sound:beep",)
    kind: StepKind = field(default=StepKind.CALL_THROUGH, init=False)

    def exits(self) -> dict[StepOutcome, StepName]:
        """The step each outcome leads to."""
        return {
            StepOutcome.CHOSEN: self.out,
            StepOutcome.REFUSED: self.refused,
            StepOutcome.TIMEOUT: self.refused,
        }


Step = (
    ScheduleStep
    | PlayStep
    | RingStep
    | VoicemailStep
    | GotoStep
    | HangupStep
    | MenuStep
    | CallThroughStep
)


@dataclass(frozen=True, slots=True)
class Flow:
    """What to do with one call: its steps, where to start, and who is calling."""

    did: str
    trunk: str | None
    route: str
    start: StepName
    steps: Mapping[StepName, Step]
    caller_number: str
    caller_name: str
    caller_withheld: bool = False  # the caller withheld their number (kept in CDR anyway)
    timezone: str = "UTC"
    call_out: CallOut | None = None  # a softphone calling out (None: an inbound call)
    limits: FlowLimits | None = None  # the number's plan (None: no plan, or an emergency call)

    def step(self, name: StepName) -> Step:
        """The step called `name` (KeyError if the planner built a broken flow)."""
        return self.steps[name]

    def walk(self) -> Iterator[Step]:
        """Every step reachable from the start, each once, in breadth-first order."""
        seen: set[StepName] = set()
        queue = [self.start]
        while queue:
            name = queue.pop(0)
            if name in seen:
                continue
            seen.add(name)
            step = self.steps[name]
            yield step
            queue.extend(step.following() if isinstance(step, MenuStep) else step.exits().values())
