"""The decision for a call a softphone places, as tables of cases (pure: no network, no clock)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from pbxd.config.compile import CompileResult, compile_config
from pbxd.config.model import Config
from pbxd.dialplan import CallFacts, Flow, Reject, RejectWhy, RingStep, plan_call
from pbxd.dialplan.outbound import read_dialled
from pbxd.dialplan.presentation import Presentation
from pbxd.dialplan.tollfraud import leg_refusal

ROOT = Path(__file__).resolve().parents[2]

TRUNKS = """\
trunks:
  carrier-fr:
    inbound_endpoint: trunk-in
    dial: "PJSIP/{number}@trunk-out"
    allowed_destinations: ["+33", "+44"]
    max_outbound_legs: 2
    country: FR
    timezone: Europe/Paris
    numbers:
      - number: 01 70 00 00 01
      - number: 01 70 00 00 02
        status: reserved
"""

ROUTING = """\
country: FR
targets:
  alice: {softphone: PJSIP/alice}
  bob: {softphone: PJSIP/bob}
routes:
  - numbers: [01 70 00 00 01]
    targets: [alice]
outbound:
  reception:
    softphones: [alice]
    outbound_number: 01 70 00 00 01
  mobiles-only:
    softphones: [bob]
    outbound_number: 01 70 00 00 01
    may_dial: ["+336", "+337"]
"""


def compile_tree(tmp_path: Path, routing: str = ROUTING, trunks: str = TRUNKS) -> CompileResult:
    """Compile pbxd.yaml, `trunks` and one routing file written to `tmp_path`."""
    (tmp_path / "routing").mkdir(exist_ok=True)
    (tmp_path / "pbxd.yaml").write_text("state_dir: var\n", encoding="utf-8")
    (tmp_path / "sip-trunks.yaml").write_text(trunks, encoding="utf-8")
    (tmp_path / "routing" / "main.yaml").write_text(routing, encoding="utf-8")
    return compile_config(tmp_path / "pbxd.yaml")


def errors_of(result: CompileResult) -> list[str]:
    return [str(d) for d in result.diagnostics if d.severity == "error"]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    result = compile_tree(tmp_path)
    assert result.config is not None, [str(d) for d in result.diagnostics]
    return result.config


def facts(endpoint: str, dialled: str, *args: str) -> CallFacts:
    return CallFacts(
        channel_id="1.1",
        channel_name=f"PJSIP/{endpoint}-0000000a",
        called=dialled,
        caller_number=endpoint,
        caller_name="",
        stasis_args=("outbound", *args),
    )


@pytest.mark.parametrize(
    ("typed", "country", "number", "emergency", "withheld"),
    [
        ("06 12 34 56 78", "FR", "+33612345678", False, False),
        ("0612345678", "FR", "+33612345678", False, False),
        ("00 44 20 7946 0123", "FR", "+442079460123", False, False),
        ("+44 20 7946 0123", "FR", "+442079460123", False, False),
        ("020 7946 0123", "GB", "+442079460123", False, False),
        ("*31*06 12 34 56 78", "FR", "+33612345678", False, True),
        ("#31#0612345678", "FR", "+33612345678", False, True),
        ("112", "FR", "112", True, False),
        ("15", "FR", "15", True, False),
        ("17", "FR", "17", True, False),
        ("18", "FR", "18", True, False),
        ("999", "GB", "999", True, False),
        ("112", "GB", "112", True, False),
        ("*31*112", "FR", "112", True, True),
    ],
)
def test_what_a_softphone_dials_is_read_in_its_country(
    typed: str, country: str, number: str, emergency: bool, withheld: bool
) -> None:
    read = read_dialled(typed, country)
    assert read is not None
    assert (read.number, read.emergency, read.withheld) == (number, emergency, withheld)


@pytest.mark.parametrize("typed", ["", "alice", "*31*", "06 12 ab", "999", "1" * 30])
def test_what_is_not_a_number_is_not_read(typed: str) -> None:
    # 999 is an emergency number in the UK only: in France it is no number at all.
    assert read_dialled(typed, "FR") is None


def test_inbound_and_outbound_are_told_apart_by_the_stasis_args_only(config: Config) -> None:
    # The same softphone channel, the same exten: only the first argument differs.
    out = plan_call(facts("alice", "0612345678"), config)
    assert isinstance(out, Flow) and out.call_out is not None
    inbound = plan_call(
        CallFacts("1.2", "PJSIP/alice-0000000b", "0612345678", "alice", "", ("allowed",)),
        config,
    )
    assert isinstance(inbound, Reject) and inbound.call_out is None
    assert inbound.why is RejectWhy.UNKNOWN_NUMBER


@pytest.mark.parametrize(
    ("endpoint", "typed", "why", "cause"),
    [
        ("alice", "+49 30 1234567", RejectWhy.FORBIDDEN_DESTINATION, 52),
        ("alice", "08 99 12 34 56", RejectWhy.FORBIDDEN_DESTINATION, 52),
        ("bob", "01 40 00 00 00", RejectWhy.FORBIDDEN_DESTINATION, 52),  # mobiles only
        ("alice", "hello", RejectWhy.BAD_NUMBER, 28),
        ("carol", "0612345678", RejectWhy.NOT_ALLOWED_OUT, 21),
    ],
)
def test_refusals_are_decided_before_any_channel(
    config: Config, endpoint: str, typed: str, why: RejectWhy, cause: int
) -> None:
    decision = plan_call(facts(endpoint, typed), config)
    assert isinstance(decision, Reject)
    assert (decision.why, decision.cause) == (why, cause)


def test_an_allowed_call_presents_the_virtual_number_and_passes_the_last_check(
    config: Config,
) -> None:
    decision = plan_call(facts("bob", "07 00 00 00 01", "prohib_not_screened"), config)
    assert isinstance(decision, Flow)
    ring = decision.steps[decision.start]
    assert isinstance(ring, RingStep) and ring.early_media
    (leg,) = ring.legs
    assert leg.dial_string == "PJSIP/+33700000001@trunk-out"
    assert leg.caller_id_number == "+33170000001"
    assert leg.caller_id_presentation is Presentation.PROHIB_NOT_SCREENED
    assert leg_refusal(leg) is None
    assert decision.caller_withheld


def test_an_emergency_leg_passes_the_last_check_and_nothing_else_does(config: Config) -> None:
    decision = plan_call(facts("bob", "*31*18"), config)  # bob: mobiles only, CLIR asked
    assert isinstance(decision, Flow) and decision.call_out is not None
    assert decision.call_out.emergency
    ring = decision.steps[decision.start]
    assert isinstance(ring, RingStep)
    (leg,) = ring.legs
    assert leg.dial_string == "PJSIP/18@trunk-out"
    assert leg.caller_id_presentation is Presentation.ALLOWED_NOT_SCREENED
    assert leg_refusal(leg) is None
    # The same leg dialling something that is not an emergency number is refused.
    for sneaked in ("PJSIP/3615@trunk-out", "PJSIP/18@trunk-uk", "PJSIP/18&Local/1@x"):
        assert leg_refusal(_with_dial(leg, sneaked)) is not None


def _with_dial(leg: object, dial: str) -> object:
    import dataclasses

    return dataclasses.replace(leg, dial_string=dial)  # type: ignore[type-var]


ALICE = "softphones: [alice]\n    "
NUMBER = ALICE + "outbound_number: 01 70 00 00 01"


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        ("softphones: [alicia]\n    outbound_number: 01 70 00 00 01", "alicia", "unknown target"),
        (ALICE + "outbound_number: 01 70 00 00 09", "01 70 00 00 09", "not one of our numbers"),
        (ALICE + "outbound_number: 01 70 00 00 02", "01 70 00 00 02", "reserved"),
        (NUMBER + "\n    may_dial: ['+49']", "'+49'", "only narrows"),
        (NUMBER + "\n    trunk: carrier-de", "carrier-de", "unknown trunk"),
        (NUMBER + "\n    timeout: 0", "0", "timeout"),
        (ALICE + "outbound_numbr: 01 70 00 00 01", "outbound_numbr", "outbound_numbr"),
    ],
)
def test_pbxd_check_pins_outbound_errors_to_their_line(
    tmp_path: Path, entry: str, key: str, message: str
) -> None:
    head = textwrap.dedent(
        """\
        country: FR
        targets:
          alice: {softphone: PJSIP/alice}
        routes:
          - numbers: [01 70 00 00 01]
            targets: [alice]
        outbound:
          desk:
        """
    )
    routing = f"{head}    {entry}\n"
    errors = errors_of(compile_tree(tmp_path, routing))
    assert len(errors) >= 1, errors
    lines = routing.splitlines()
    wanted = max(i for i, line in enumerate(lines, 1) if key in line)
    column = lines[wanted - 1].rindex(key) + 1
    found = [e for e in errors if message in e]
    assert found, errors
    assert re.search(rf"main\.yaml:{wanted}:{column}\b", found[0]), found[0]


def test_the_shipped_outbound_context_sends_calls_to_pbxd_as_outbound() -> None:
    text = (ROOT / "asterisk-conf" / "extensions.conf").read_text(encoding="utf-8")
    start = text.index(";[from-softphones]")
    block = text[start : text.index("\n\n", start)]
    lines = [line[1:] for line in block.splitlines() if line.startswith(";")]
    active = [line for line in lines if line.strip() and not line.lstrip().startswith(";")]
    assert active[0] == "[from-softphones]"
    stasis = [line for line in active if "Stasis(" in line]
    assert stasis == [" same => n,Stasis(pbxd,outbound,${CALLERID(pres)})"]
    # Nothing in the context dials the trunk itself: pbxd decides every call going out.
    assert not any("Dial(" in line for line in active)


@pytest.mark.parametrize(
    ("entry", "key", "message"),
    [
        (NUMBER + "\n    mobiles: [06 00 00 00 42]", "[06 00 00 00 42]", "add `pin:`"),
        (NUMBER + "\n    mobiles: [06 00 00 00 42]\n    pin: 'l234'", "'l234'", "4 to 12 digits"),
        (NUMBER + "\n    mobiles: [06 00 00 00 4x]\n    pin: '1234'", "06 00 00 00 4x", ""),
    ],
)
def test_call_through_rights_are_checked(
    tmp_path: Path, entry: str, key: str, message: str
) -> None:
    head = "country: FR\ntargets:\n  alice: {softphone: PJSIP/alice}\noutbound:\n  desk:\n"
    routing = f"{head}    {entry}\n"
    errors = errors_of(compile_tree(tmp_path, routing))
    lines = routing.splitlines()
    wanted = max(i for i, line in enumerate(lines, 1) if key in line)
    column = lines[wanted - 1].rindex(key) + 1
    found = [e for e in errors if message in e]
    assert found, errors
    assert re.search(rf"main\.yaml:{wanted}:{column}\b", found[0]), found[0]
    assert "l234" not in " ".join(e for e in errors if "pin" in e)  # a PIN is never echoed


def test_an_access_number_must_be_ours(tmp_path: Path) -> None:
    routing = ROUTING + "call_through:\n  numbers: [01 70 00 00 09, 01 70 00 00 02]\n"
    errors = errors_of(compile_tree(tmp_path, routing))
    assert [e.split(": error: ")[1] for e in errors] == [
        "+33170000009 is not one of our numbers (sip-trunks.yaml)",
        "+33170000002 is reserved: it takes no calls",
    ]
