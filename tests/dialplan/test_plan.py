"""Routing decisions as pure functions: `plan_call`, `unanswered_outcome`, number clean-up.

Table-driven: each case is one line a reader can check against the example configuration
(pbxd.yaml, sip-trunks.yaml, routing/*.yaml) or against a small configuration written to a
temporary directory when the example does not cover the case.
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pbxd.cdr.records import Disposition
from pbxd.config.compile import compile_config
from pbxd.config.files import HangupReason, RingStrategy
from pbxd.config.model import Config
from pbxd.dialplan import (
    CallFacts,
    Flow,
    HangupStep,
    LegPlan,
    Reject,
    RejectWhy,
    RingStep,
    endpoint_of_channel,
    plan_call,
)
from pbxd.dialplan.callerid import CallerIdRule
from pbxd.dialplan.outcome import CAUSE_OF_REASON, unanswered_outcome
from pbxd.dialplan.plan import normalise_number, presented_caller

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from classic_example import classic_example_config  # noqa: E402

FR_IN = "PJSIP/trunk-in-0000001c"
UK_IN = "PJSIP/trunk-uk-000000a3"

PARIS = "+33170000001"
SUPPORT = "+33972100001"
SPARE = "+33170000002"
DIRECT = "+33170000105"
LONDON = "+442079460123"
CALLER = "+33612000001"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Config:
    """The shipped trunks with the example routing of before call flows (ring-only routes)."""
    return classic_example_config(tmp_path_factory.mktemp("classic"))


def facts(
    called: str, caller: str = CALLER, *, channel: str = FR_IN, name: str = "Jean"
) -> CallFacts:
    return CallFacts(
        channel_id="1763000000.101",
        channel_name=channel,
        called=called,
        caller_number=caller,
        caller_name=name,
    )


@dataclass(frozen=True)
class Ringing:
    """A flow of today's shape (ring, then hang up), read with the names the plan had."""

    flow: Flow
    step: RingStep

    def __getattr__(self, name: str) -> Any:
        return getattr(self.step if hasattr(self.step, name) else self.flow, name)

    @property
    def no_answer_reason(self) -> HangupReason:
        hangup = self.flow.step(self.step.no_answer)
        assert isinstance(hangup, HangupStep), hangup
        return hangup.reason


def ring(decision: Flow | Reject) -> Ringing:
    assert isinstance(decision, Flow), decision
    step = decision.step(decision.start)
    assert isinstance(step, RingStep), step
    return Ringing(decision, step)


def write_config(directory: Path, trunks: str, routing: str) -> Config:
    """A purpose-built configuration (pbxd.yaml + sip-trunks.yaml + routing/main.yaml)."""
    (directory / "routing").mkdir(parents=True, exist_ok=True)
    (directory / "pbxd.yaml").write_text("state_dir: var\n", encoding="utf-8")
    (directory / "sip-trunks.yaml").write_text(textwrap.dedent(trunks), encoding="utf-8")
    (directory / "routing" / "main.yaml").write_text(textwrap.dedent(routing), encoding="utf-8")
    result = compile_config(directory / "pbxd.yaml")
    assert result.config is not None, [str(d) for d in result.diagnostics]
    return result.config


TRUNKS = """\
    trunks:
      carrier-fr:
        inbound_endpoint: trunk-in
        dial: "PJSIP/{number}@trunk-out"
        allowed_destinations: ["+33"]
        max_outbound_legs: 4
        country: FR
        numbers:
          - number: 01 70 00 00 01
          - number: 01 70 00 00 03
          - number: 01 70 00 00 04
          - number: 01 70 00 00 05
          - number: 01 70 00 00 06        # in service, but no route mentions it
"""

ROUTING = """\
    country: FR
    targets:
      alice: {softphone: PJSIP/alice}
      bob: {softphone: PJSIP/bob}
      dave: {softphone: PJSIP/dave}
      mobile: {external: 06 12 34 56 78, trunk: carrier-fr}
    routes:
      - name: hunt-capped            # 15 + 10 = 25: on paper the mobile has 5 s, dave none
        numbers: [01 70 00 00 01]
        strategy: hunt
        targets:
          - {target: alice, ring_time: 15}
          - {target: bob, ring_time: 10}
          - {target: mobile, ring_time: 20}
          - {target: dave, ring_time: 20}
        timeout: 30
      - name: hunt-exact             # bob's turn starts at the timeout if alice rings out
        numbers: [01 70 00 00 03]
        strategy: hunt
        targets:
          - {target: alice, ring_time: 20}
          - {target: bob, ring_time: 20}
        timeout: 20
      - name: ringall-long           # ring times longer than the route: capped at 12
        numbers: [01 70 00 00 04]
        strategy: ringall
        ring_time: 45
        targets: [alice, {target: bob, ring_time: 5}, mobile]
        timeout: 12
        no_answer: {action: hangup, cause: congestion}
      - name: presents-did           # caller_id: number, the number has no label
        numbers: [01 70 00 00 05]
        targets: [dave]
        caller_id: number
"""


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return write_config(tmp_path_factory.mktemp("plan"), TRUNKS, ROUTING)


# ------------------------------------------------------------------ endpoint names


@pytest.mark.parametrize(
    ("channel", "endpoint"),
    [
        ("PJSIP/trunk-in-0000001c", "trunk-in"),
        ("PJSIP/trunk-uk-000000a3", "trunk-uk"),
        ("PJSIP/alice-00000001", "alice"),
        ("PJSIP/trunk-in", "trunk-in"),  # no sequence suffix
        ("PJSIP/trunk-in-1c", "trunk-in-1c"),  # not 8 hex digits: part of the name
        ("PJSIP/trunk-in-0000001G", "trunk-in-0000001G"),
        ("", ""),
    ],
)
def test_endpoint_of_channel(channel: str, endpoint: str) -> None:
    assert endpoint_of_channel(channel) == endpoint


# -------------------------------------------------------------- the called number


@pytest.mark.parametrize(
    ("called", "channel", "did"),
    [
        ("+33170000001", FR_IN, PARIS),  # E.164
        ("+33 1 70 00 00 01", FR_IN, PARIS),  # E.164 with spaces
        ("0170000001", FR_IN, PARIS),  # national, via the trunk's country (FR)
        ("0033170000001", FR_IN, PARIS),  # 00-international
        ("+442079460123", UK_IN, LONDON),
        ("02079460123", UK_IN, LONDON),  # national, GB trunk
        ("00442079460123", UK_IN, LONDON),
        ("0972100001", FR_IN, SUPPORT),
    ],
)
def test_called_number_forms_reach_the_same_route(
    example: Config, called: str, channel: str, did: str
) -> None:
    plan = ring(plan_call(facts(called, channel=channel), example))
    assert plan.did == did
    assert plan.route == example.route_for(did).name  # type: ignore[union-attr]


@dataclass(frozen=True)
class RejectCase:
    called: str
    channel: str
    did: str
    why: RejectWhy
    trunk: str | None


@pytest.mark.parametrize(
    "case",
    [
        RejectCase("+33999999999", FR_IN, "+33999999999", RejectWhy.UNKNOWN_NUMBER, "carrier-fr"),
        RejectCase("0999999999", FR_IN, "+33999999999", RejectWhy.UNKNOWN_NUMBER, "carrier-fr"),
        RejectCase("", FR_IN, "", RejectWhy.UNKNOWN_NUMBER, "carrier-fr"),
        RejectCase("s", FR_IN, "s", RejectWhy.UNKNOWN_NUMBER, "carrier-fr"),
        # The spare number is in the inventory but reserved: not in service.
        RejectCase("0170000002", FR_IN, SPARE, RejectWhy.RESERVED_NUMBER, "carrier-fr"),
        RejectCase(SPARE, FR_IN, SPARE, RejectWhy.RESERVED_NUMBER, "carrier-fr"),
        # A national number on an unknown endpoint has no country to read it with.
        RejectCase(
            "0170000001", "PJSIP/stranger-00000001", "0170000001", RejectWhy.UNKNOWN_NUMBER, None
        ),
        # The French number called in GB national form is another number.
        RejectCase("0170000001", UK_IN, "+44170000001", RejectWhy.UNKNOWN_NUMBER, "carrier-uk"),
    ],
    ids=lambda c: f"{c.called or 'empty'}@{c.channel}",
)
def test_rejections(example: Config, case: RejectCase) -> None:
    decision = plan_call(facts(case.called, channel=case.channel), example)
    assert isinstance(decision, Reject), decision
    assert decision.why is case.why
    assert decision.reason is HangupReason.UNALLOCATED
    assert CAUSE_OF_REASON[decision.reason] == 1
    assert decision.did == case.did
    assert decision.trunk == case.trunk
    assert decision.caller_number == CALLER
    assert case.did in decision.message


def test_reject_messages(example: Config) -> None:
    unknown = plan_call(facts("+33999999999"), example)
    reserved = plan_call(facts(SPARE), example)
    assert isinstance(unknown, Reject) and isinstance(reserved, Reject)
    assert unknown.message == "+33999999999 is not one of our numbers"
    assert reserved.message == f"{SPARE} is reserved, not in service"


def test_number_without_route_is_rejected(custom: Config) -> None:
    assert custom.number("+33170000006") is not None
    decision = plan_call(facts("0170000006"), custom)
    assert isinstance(decision, Reject)
    assert decision.why is RejectWhy.NO_ROUTE
    assert decision.reason is HangupReason.UNALLOCATED
    assert decision.message == "+33170000006 has no route"


def test_porting_number_is_routed(example: Config) -> None:
    number = example.number(DIRECT)
    assert number is not None and str(number.status) == "porting"
    plan = ring(plan_call(facts("0170000105"), example))
    assert plan.route == "direct-lines"
    assert [leg.target for leg in plan.legs] == ["alice", "bob"]
    assert plan.timeout == 40


# ---------------------------------------------------------------- ring schedules


def schedule(plan: Ringing) -> list[tuple[str, int, int]]:
    # When each target's turn comes if every earlier one rings its full time (a hunt).
    starts, start = [], 0
    for leg in plan.legs:
        starts.append(start)
        if plan.strategy is RingStrategy.HUNT:
            start += leg.ring_time
    return [(leg.target, at, leg.ring_time) for leg, at in zip(plan.legs, starts, strict=True)]


@pytest.mark.parametrize(
    ("did", "strategy", "timeout", "expected"),
    [
        # Example: ringall, everyone at 0 for the default 20 s.
        (
            PARIS,
            RingStrategy.RINGALL,
            30,
            [("alice", 0, 20), ("bob", 0, 20), ("ceo-mobile", 0, 20)],
        ),
        # Example: hunt 15 + 10 + 20 inside a 60 s route.
        (
            SUPPORT,
            RingStrategy.HUNT,
            60,
            [("bob", 0, 15), ("carol", 15, 10), ("support-mobile", 25, 20)],
        ),
        (LONDON, RingStrategy.RINGALL, 30, [("ceo-mobile", 0, 25)]),
    ],
)
def test_example_schedules(
    example: Config,
    did: str,
    strategy: RingStrategy,
    timeout: int,
    expected: list[tuple[str, int, int]],
) -> None:
    channel = UK_IN if did == LONDON else FR_IN
    plan = ring(plan_call(facts(did, channel=channel), example))
    assert plan.strategy is strategy
    assert plan.timeout == timeout
    assert schedule(plan) == expected


@pytest.mark.parametrize(
    ("did", "expected"),
    [
        # Every target keeps its own ring time: if alice is busy at once, the mobile and
        # even dave get their turn; the controller cuts each to what the route has left.
        (
            "+33170000001",
            [("alice", 0, 15), ("bob", 15, 10), ("mobile", 25, 20), ("dave", 45, 20)],
        ),
        # bob's turn is at the timeout on paper, but comes at once if alice is busy.
        ("+33170000003", [("alice", 0, 20), ("bob", 20, 20)]),
        # ringall: all at 0, each capped by the 12 s route timeout.
        ("+33170000004", [("alice", 0, 12), ("bob", 0, 5), ("mobile", 0, 12)]),
    ],
)
def test_schedule_keeps_every_target_within_the_route_timeout(
    custom: Config, did: str, expected: list[tuple[str, int, int]]
) -> None:
    plan = ring(plan_call(facts(did), custom))
    assert schedule(plan) == expected
    for leg in plan.legs:
        assert leg.ring_time <= plan.timeout


def test_dial_strings_and_trunks(example: Config) -> None:
    plan = ring(plan_call(facts(PARIS), example))
    legs = {leg.target: leg for leg in plan.legs}
    assert legs["alice"].dial_string == "PJSIP/alice"
    assert legs["alice"].trunk is None
    assert legs["ceo-mobile"].dial_string == "PJSIP/+33612345678@trunk-out"
    assert legs["ceo-mobile"].trunk == "carrier-fr"
    assert plan.trunk == "carrier-fr"


@pytest.mark.parametrize(
    ("did", "reason"),
    [
        (PARIS, HangupReason.NO_ANSWER),
        (SUPPORT, HangupReason.BUSY),  # no_answer: {cause: busy}
        ("+33170000004", HangupReason.CONGESTION),
    ],
)
def test_no_answer_reason(example: Config, custom: Config, did: str, reason: HangupReason) -> None:
    config = custom if did == "+33170000004" else example
    assert ring(plan_call(facts(did), config)).no_answer_reason is reason


# ------------------------------------------------------------------- caller ID


def test_caller_id_policy_caller(example: Config) -> None:
    plan = ring(plan_call(facts("0170000001", "0612000001", name="Jean Dupont"), example))
    assert example.routes["paris-reception"].caller_id == CallerIdRule()
    assert plan.caller_number == CALLER
    assert {(leg.caller_id_number, leg.caller_id_name) for leg in plan.legs} == {
        (CALLER, "Jean Dupont")
    }


def test_caller_id_policy_number_presents_the_did(example: Config) -> None:
    plan = ring(plan_call(facts("02079460123", "07700900123", channel=UK_IN), example))
    assert plan.caller_number == "+447700900123"  # the CDR keeps the real caller
    [leg] = plan.legs
    assert leg.caller_id_number == LONDON
    assert leg.caller_id_name == "London number for UK customers"


def test_caller_id_policy_number_without_label_keeps_the_callers_name(custom: Config) -> None:
    plan = ring(plan_call(facts("0170000005", name="Jean"), custom))
    [leg] = plan.legs
    assert (leg.caller_id_number, leg.caller_id_name) == ("+33170000005", "Jean")


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+33612000001", "FR", CALLER),
        ("0612000001", "FR", CALLER),
        ("0033612000001", "FR", CALLER),
        ("06 12 00 00 01", "FR", CALLER),
        ("06-12-00-00-01", "FR", CALLER),
        ("07700900123", "GB", "+447700900123"),
        ("0612000001", None, None),  # national form, no country to read it with
        ("anonymous", "FR", None),
        ("", "FR", None),
        ("   ", "FR", None),
        ("sip:+33612000001@carrier.example", "FR", None),
        ("<sip:0612000001@10.0.0.1>", "FR", None),
        ("12", "FR", None),  # too short to be a number
        ("1" * 200, "FR", None),
    ],
)
def test_normalise_number(raw: str, country: str | None, expected: str | None) -> None:
    assert normalise_number(raw, country) == expected


JUNK_CALLERS = [
    "anonymous",
    "Anonymous",
    "",
    "   ",
    "unknown",
    "sip:+33612000001@carrier.example;user=phone",
    '"Spam" <sip:666@10.6.6.6>',
    "\x00\x01\x02",
    "06\n12\t00",
    "1" * 500,
    "+" + "9" * 300,
    "x" * 10_000,
    "☎️ 06 12",
]


@pytest.mark.parametrize("junk", JUNK_CALLERS, ids=[str(i) for i in range(len(JUNK_CALLERS))])
def test_junk_caller_numbers_are_cleaned_never_crash(example: Config, junk: str) -> None:
    plan = ring(plan_call(facts(PARIS, junk, name=junk), example))
    for number in (plan.caller_number, *(leg.caller_id_number for leg in plan.legs)):
        assert number, "an empty caller number must be presented as anonymous"
        assert number.isprintable()
        assert len(number) <= 40
    assert plan.caller_name.isprintable()
    assert len(plan.caller_name) <= 80


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", "anonymous"),
        ("anonymous", "anonymous"),
        ("\x00", "anonymous"),
        ("0612000001", CALLER),
        ("06\n12", "0612"),
    ],
)
def test_presented_caller(raw: str, expected: str) -> None:
    number, name = presented_caller(facts(PARIS, raw, name="A\tB"), "FR")
    assert number == expected
    assert name == "AB"


# ------------------------------------------------------------ unanswered outcome


NA = HangupReason.NO_ANSWER


@pytest.mark.parametrize(
    ("causes", "timed_out", "expected"),
    [
        ([17], False, (Disposition.BUSY, HangupReason.BUSY)),
        ([17, 17, 17], False, (Disposition.BUSY, HangupReason.BUSY)),
        ([19], False, (Disposition.NO_ANSWER, NA)),
        ([18], False, (Disposition.NO_ANSWER, NA)),
        ([16], False, (Disposition.NO_ANSWER, NA)),  # we hung it up at its ring time
        ([17, 19], False, (Disposition.NO_ANSWER, NA)),
        ([None], False, (Disposition.FAILED, HangupReason.CONGESTION)),  # offline
        ([None, None], False, (Disposition.FAILED, HangupReason.CONGESTION)),
        ([None, 34], False, (Disposition.FAILED, HangupReason.CONGESTION)),
        ([None, 19], False, (Disposition.NO_ANSWER, NA)),
        ([17, 17, None], False, (Disposition.BUSY, HangupReason.BUSY)),  # nobody free
        ([17, 34], False, (Disposition.BUSY, HangupReason.BUSY)),
        ([], False, (Disposition.FAILED, HangupReason.CONGESTION)),  # nothing planned
        # The route timed out: no answer whatever the legs said (some were still ringing).
        ([], True, (Disposition.NO_ANSWER, NA)),
        ([17], True, (Disposition.NO_ANSWER, NA)),
        ([None], True, (Disposition.NO_ANSWER, NA)),
        ([19, 17], True, (Disposition.NO_ANSWER, NA)),
    ],
)
def test_unanswered_outcome(
    causes: list[int | None], timed_out: bool, expected: tuple[Disposition, HangupReason]
) -> None:
    assert unanswered_outcome(causes, timed_out, NA) == expected


def test_unanswered_outcome_uses_the_routes_reason() -> None:
    assert unanswered_outcome([19], True, HangupReason.BUSY) == (
        Disposition.NO_ANSWER,
        HangupReason.BUSY,
    )
    # ...but every leg busy is busy, whatever the route says.
    assert unanswered_outcome([17], False, HangupReason.CONGESTION) == (
        Disposition.BUSY,
        HangupReason.BUSY,
    )


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        # Asterisk 22 res/ari/resource_channels.c convert_reason_to_hangup_code().
        (HangupReason.NORMAL, 16),
        (HangupReason.BUSY, 17),
        (HangupReason.CONGESTION, 34),
        (HangupReason.NO_ANSWER, 19),
        (HangupReason.TIMEOUT, 18),  # AST_CAUSE_NO_USER_RESPONSE
        (HangupReason.REJECTED, 21),
        (HangupReason.UNALLOCATED, 1),
        (HangupReason.NORMAL_UNSPECIFIED, 31),
        (HangupReason.NUMBER_INCOMPLETE, 28),
        (HangupReason.CODEC_MISMATCH, 58),
        (HangupReason.INTERWORKING, 127),
        (HangupReason.FAILURE, 38),  # AST_CAUSE_FAILURE = NETWORK_OUT_OF_ORDER
        (HangupReason.ANSWERED_ELSEWHERE, 26),
    ],
)
def test_cause_of_reason_matches_asterisk(reason: HangupReason, cause: int) -> None:
    assert CAUSE_OF_REASON[reason] == cause


def test_every_reason_has_a_cause() -> None:
    assert set(CAUSE_OF_REASON) == set(HangupReason)


def test_leg_plan_is_frozen(example: Config) -> None:
    plan = ring(plan_call(facts(PARIS), example))
    leg: LegPlan = plan.legs[0]
    with pytest.raises(AttributeError):
        leg.ring_time = 99  # type: ignore[misc]


# ---------------------------------------------------------------- flows


@pytest.mark.parametrize(
    ("did", "strategy", "no_answer"),
    [
        (PARIS, RingStrategy.RINGALL, HangupReason.NO_ANSWER),
        (SUPPORT, RingStrategy.HUNT, HangupReason.BUSY),  # no_answer: {cause: busy}
    ],
)
def test_todays_route_is_a_ring_step_then_hangups(
    example: Config, did: str, strategy: RingStrategy, no_answer: HangupReason
) -> None:
    flow = plan_call(facts(did), example)
    assert isinstance(flow, Flow)
    assert flow.start == "ring"
    step = flow.step("ring")
    assert isinstance(step, RingStep) and step.strategy is strategy
    # Each way a ring ends leads to a hangup with the cause today's routes give it.
    reasons = {}
    for outcome, name in step.exits().items():
        hangup = flow.step(name)
        assert isinstance(hangup, HangupStep) and hangup.exits() == {}
        reasons[str(outcome)] = hangup.reason
    assert reasons == {
        "no_answer": no_answer,
        "busy": HangupReason.BUSY,
        "unavailable": HangupReason.CONGESTION,
    }
    assert [s.name for s in flow.walk()] == ["ring", "no_answer", "busy", "unavailable"]
    assert flow.timezone == "Europe/Paris"
