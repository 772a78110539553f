"""A withheld caller (CLIR) stays withheld: the presentation the dialplan passes, and the plan.

The shipped dialplan runs `Stasis(pbxd,${CALLERID(pres)})`; these tests feed every value
CALLERID(pres) can read (callerid.c `pres_types`) through `plan_call` under both caller-ID
policies and for both kinds of target (our softphone, a mobile through the carrier).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import structlog

from pbxd.config.compile import compile_config
from pbxd.config.model import Config
from pbxd.dialplan import (
    CallFacts,
    Flow,
    LegPlan,
    Presentation,
    Reject,
    RingStep,
    plan_call,
    presentation_of_stasis_args,
)
from pbxd.dialplan.presentation import parse_presentation, read_presentation

CALLER = "+33612000001"
RINGALL = "+33170000001"  # alice (softphone) and a mobile through the carrier
PRESENTS_DID = "+33170000002"  # caller_id: number, the number has no label
LABELLED_DID = "+33170000003"  # caller_id: number, the number has a label
UNKNOWN_DID = "+33170000099"
MOBILE = "+33612345678"

TRUNKS = """\
    trunks:
      carrier-fr:
        inbound_endpoint: trunk-in
        dial: "PJSIP/{number}@trunk-out"
        allowed_destinations: ["+33"]
        country: FR
        numbers:
          - number: 01 70 00 00 01
          - number: 01 70 00 00 02
          - number: 01 70 00 00 03
            label: Acme sales
"""

ROUTING = """\
    country: FR
    targets:
      alice: {softphone: PJSIP/alice}
      mobile: {external: 06 12 34 56 78, trunk: carrier-fr}
    routes:
      - name: ringall
        numbers: [01 70 00 00 01]
        targets: [alice, mobile]
        caller_id: caller
      - name: presents-did
        numbers: [01 70 00 00 02]
        targets: [alice, mobile]
        caller_id: number
      - name: presents-labelled-did
        numbers: [01 70 00 00 03]
        targets: [alice]
        caller_id: number
"""

ALLOWED_VALUES = [
    "allowed_not_screened",
    "allowed_passed_screen",
    "allowed_failed_screen",
    "allowed",
]
WITHHELD_VALUES = [
    "prohib_not_screened",
    "prohib_passed_screen",
    "prohib_failed_screen",
    "prohib",
]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    directory = tmp_path_factory.mktemp("presentation")
    (directory / "routing").mkdir()
    (directory / "pbxd.yaml").write_text("state_dir: var\n", encoding="utf-8")
    (directory / "sip-trunks.yaml").write_text(textwrap.dedent(TRUNKS), encoding="utf-8")
    (directory / "routing" / "main.yaml").write_text(textwrap.dedent(ROUTING), encoding="utf-8")
    result = compile_config(directory / "pbxd.yaml")
    assert result.config is not None, [str(d) for d in result.diagnostics]
    return result.config


def facts(called: str, *args: str, caller: str = CALLER, name: str = "Jean") -> CallFacts:
    return CallFacts(
        channel_id="1763000000.101",
        channel_name="PJSIP/trunk-in-0000001c",
        called=called,
        caller_number=caller,
        caller_name=name,
        stasis_args=args,
    )


def legs(config: Config, called: str, *args: str, name: str = "Jean") -> dict[str, LegPlan]:
    plan = plan_call(facts(called, *args, name=name), config)
    assert isinstance(plan, Flow), plan
    return {leg.target: leg for leg in ring_step(plan).legs}


def ring_step(flow: Flow) -> RingStep:
    step = flow.step(flow.start)
    assert isinstance(step, RingStep), step
    return step


def shown(leg: LegPlan) -> tuple[str, str, str]:
    return leg.caller_id_number, leg.caller_id_name, str(leg.caller_id_presentation)


# ------------------------------------------------------------ reading the argument


@pytest.mark.parametrize("value", ALLOWED_VALUES)
def test_allowed_values(value: str) -> None:
    presentation = presentation_of_stasis_args([value])
    assert str(presentation) == value
    assert presentation.allowed and not presentation.withheld


@pytest.mark.parametrize("value", WITHHELD_VALUES)
def test_withheld_values(value: str) -> None:
    presentation = presentation_of_stasis_args([value])
    assert str(presentation) == value
    assert presentation.withheld and not presentation.allowed


def test_unavailable_is_neither_allowed_nor_withheld() -> None:
    presentation = presentation_of_stasis_args(["unavailable"])
    assert presentation is Presentation.UNAVAILABLE
    assert not presentation.allowed and not presentation.withheld


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PROHIB_NOT_SCREENED", Presentation.PROHIB_NOT_SCREENED),  # Asterisk ignores case
        (" prohib ", Presentation.PROHIB),
        ("0", Presentation.ALLOWED_NOT_SCREENED),  # the numeric codes of callerid.h
        ("3", Presentation.ALLOWED),
        ("32", Presentation.PROHIB_NOT_SCREENED),
        ("35", Presentation.PROHIB),
        ("67", Presentation.UNAVAILABLE),
        ("36", Presentation.PROHIB_NOT_SCREENED),  # restricted bit set, odd screening
        ("", None),
        ("unknown", None),  # what ast_named_caller_presentation() gives an odd code
        ("1234", None),
    ],
)
def test_parse_presentation(text: str, expected: Presentation | None) -> None:
    assert parse_presentation(text) is expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), Presentation.ALLOWED_NOT_SCREENED),  # plain Stasis(pbxd): an older dialplan
        (("",), Presentation.ALLOWED_NOT_SCREENED),  # Stasis(pbxd,)
        (("prohib_not_screened", "extra"), Presentation.PROHIB_NOT_SCREENED),
        (("sales",), Presentation.ALLOWED_NOT_SCREENED),  # a custom dialplan's own argument
        (("unknown",), Presentation.ALLOWED_NOT_SCREENED),
        (("prohib_by_carrier",), Presentation.PROHIB_NOT_SCREENED),  # privacy-safe reading
        (("Prohibited",), Presentation.PROHIB_NOT_SCREENED),
        (("${CALLERID(pres)}",), Presentation.ALLOWED_NOT_SCREENED),  # a quoting slip
        (("\x00\u202e" * 500,), Presentation.ALLOWED_NOT_SCREENED),
    ],
)
def test_odd_arguments_never_fail(args: tuple[str, ...], expected: Presentation) -> None:
    assert presentation_of_stasis_args(args) is expected


def test_an_unknown_value_is_logged_once() -> None:
    structlog.reset_defaults()
    with structlog.testing.capture_logs() as captured:
        for _ in range(3):
            presentation_of_stasis_args(["not-a-presentation-value"])
        presentation_of_stasis_args(["prohib_not_screened"])
    lines: list[dict[str, Any]] = [
        line for line in captured if line.get("value") == "not-a-presentation-value"
    ]
    assert len(lines) == 1
    assert lines[0]["log_level"] == "info"
    assert lines[0]["read_as"] == "allowed_not_screened"
    assert len(captured) == 1  # a known value is not logged


def test_read_presentation_says_whether_it_knew_the_value() -> None:
    assert read_presentation("prohib") == (Presentation.PROHIB, True)
    assert read_presentation("prohibX") == (Presentation.PROHIB_NOT_SCREENED, False)
    assert read_presentation("nope") == (Presentation.ALLOWED_NOT_SCREENED, False)


# --------------------------------------------------------------- the routing plan


@pytest.mark.parametrize("value", ALLOWED_VALUES)
def test_policy_caller_allowed_shows_the_caller_everywhere(config: Config, value: str) -> None:
    planned = legs(config, RINGALL, value)
    assert shown(planned["alice"]) == (CALLER, "Jean", value)
    assert shown(planned["mobile"]) == (CALLER, "Jean", value)


def test_policy_caller_plain_stasis_shows_the_caller(config: Config) -> None:
    planned = legs(config, RINGALL)
    assert {shown(leg) for leg in planned.values()} == {(CALLER, "Jean", "allowed_not_screened")}


@pytest.mark.parametrize("value", WITHHELD_VALUES)
def test_policy_caller_withheld_hides_the_number_from_our_phones(
    config: Config, value: str
) -> None:
    planned = legs(config, RINGALL, value)
    # Our softphone gets nothing of the caller: "Anonymous" <anonymous>, restricted.
    assert shown(planned["alice"]) == ("anonymous", "Anonymous", value)
    # The carrier gets the real identity, restricted: PAI + Privacy: id (billing, 112).
    assert shown(planned["mobile"]) == (CALLER, "Jean", value)


def test_policy_caller_unavailable_is_passed_on(config: Config) -> None:
    plan = plan_call(facts(RINGALL, "unavailable", caller="", name=""), config)
    assert isinstance(plan, Flow)
    assert not plan.caller_withheld
    assert {shown(leg) for leg in ring_step(plan).legs} == {("anonymous", "", "unavailable")}


@pytest.mark.parametrize("value", [*ALLOWED_VALUES, *WITHHELD_VALUES, "unavailable"])
def test_policy_number_always_shows_the_did(config: Config, value: str) -> None:
    planned = legs(config, LABELLED_DID, value)
    assert shown(planned["alice"]) == (LABELLED_DID, "Acme sales", "allowed_not_screened")


def test_policy_number_never_shows_a_withheld_callers_name(config: Config) -> None:
    allowed = legs(config, PRESENTS_DID, "allowed_not_screened")
    withheld = legs(config, PRESENTS_DID, "prohib_not_screened")
    assert shown(allowed["alice"]) == (PRESENTS_DID, "Jean", "allowed_not_screened")
    assert shown(withheld["alice"]) == (PRESENTS_DID, "", "allowed_not_screened")
    assert shown(withheld["mobile"]) == (PRESENTS_DID, "", "allowed_not_screened")


@pytest.mark.parametrize("value", [*WITHHELD_VALUES, "allowed", ""])
def test_the_cdr_keeps_the_real_caller(config: Config, value: str) -> None:
    plan = plan_call(facts(RINGALL, value), config)
    assert isinstance(plan, Flow)
    assert (plan.caller_number, plan.caller_name) == (CALLER, "Jean")
    assert plan.caller_withheld is value.startswith("prohib")


def test_a_rejected_withheld_call_says_so(config: Config) -> None:
    reject = plan_call(facts(UNKNOWN_DID, "prohib"), config)
    assert isinstance(reject, Reject)
    assert reject.caller_withheld and reject.caller_number == CALLER


def test_the_caller_is_withheld_on_every_leg_of_a_hunt(tmp_path: Path) -> None:
    # Same rule whatever the strategy: each leg is planned on its own target's kind.
    (tmp_path / "routing").mkdir()
    (tmp_path / "pbxd.yaml").write_text("state_dir: var\n", encoding="utf-8")
    (tmp_path / "sip-trunks.yaml").write_text(textwrap.dedent(TRUNKS), encoding="utf-8")
    routing = ROUTING.replace(
        "targets: [alice, mobile]\n        caller_id: caller",
        "strategy: hunt\n        targets: [mobile, alice]\n        caller_id: caller",
    )
    (tmp_path / "routing" / "main.yaml").write_text(textwrap.dedent(routing), encoding="utf-8")
    result = compile_config(tmp_path / "pbxd.yaml")
    assert result.config is not None, [str(d) for d in result.diagnostics]
    planned = legs(result.config, RINGALL, "prohib_passed_screen")
    assert shown(planned["mobile"]) == (CALLER, "Jean", "prohib_passed_screen")
    assert shown(planned["alice"]) == ("anonymous", "Anonymous", "prohib_passed_screen")
