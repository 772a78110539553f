"""`pbxd check` on confirm calls and whispers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pbxd.cli.main import main
from pbxd.config.compile import compile_config
from pbxd.config.files import NumberStatus
from pbxd.config.model import Config
from pbxd.dialplan import CallFacts, Flow, LegPlan, RingStep, plan_call

from .conftest import Edit

SCREENED = """\
routes:
  - name: screened
    numbers: ["+33170000002"]
    targets: [alice, {target: ceo-mobile, confirm: true}]
    whisper: acme-welcome
    confirm_prompt: [acme-welcome]
"""


def write(example: Path, text: str) -> None:
    (example / "routing" / "screen.yaml").write_text(text)


def run_check(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = main(["check"])
    return status, capsys.readouterr().err.splitlines()


def test_confirm_and_whisper_reach_the_legs(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(example, SCREENED)
    status, err = run_check(capsys)
    assert status == 0, err
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None
    # The shipped inventory reserves this number: plan it as if it were in service.
    number = config.numbers["+33170000002"]
    config.numbers["+33170000002"] = replace(number, status=NumberStatus.ACTIVE)
    facts = CallFacts("c1", "PJSIP/trunk-in-00000001", "+33170000002", "+33612000001", "Jean")
    flow = plan_call(facts, config)
    assert isinstance(flow, Flow)
    ring = flow.step("ring")
    assert isinstance(ring, RingStep)
    legs = {leg.target: leg for leg in ring.legs}
    assert legs["alice"].confirm == () and legs["alice"].whisper == ("sound:acme-welcome",)
    assert legs["ceo-mobile"].confirm == ("sound:acme-welcome",)
    assert legs["ceo-mobile"].whisper == ("sound:acme-welcome",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            SCREENED.replace("    confirm_prompt: [acme-welcome]\n", ""),
            "4:5: error: route 'screened' confirms calls to ceo-mobile: say what they hear",
            id="confirm-without-prompt",
        ),
        pytest.param(
            SCREENED.replace(
                "{target: ceo-mobile, confirm: true}", "{target: alice, confirm: true}"
            ),
            "4:47: error: confirm calls are for external numbers, not softphone 'alice'",
            id="confirm-on-a-softphone",
        ),
        pytest.param(
            SCREENED.replace("whisper: acme-welcome", "whisper: ../etc/passwd"),
            "5:14: error: prompt '../etc/passwd' must be a sound file name",
            id="whisper-not-a-sound",
        ),
    ],
)
def test_screening_errors_are_placed(
    example: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    write(example, text)
    status, err = run_check(capsys)
    assert status == 1
    assert any(line.startswith(f"routing/screen.yaml:{expected}") for line in err), err


def test_confirm_prompt_without_confirming_target_is_a_warning(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(example, SCREENED.replace(", {target: ceo-mobile, confirm: true}", ""))
    status, err = run_check(capsys)
    assert status == 0
    assert any("`confirm_prompt:` is never used" in line for line in err), err


def test_a_softphone_target_cannot_confirm(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        example,
        "targets:\n  desk: {softphone: PJSIP/desk, confirm: true}\n" + SCREENED,
    )
    status, err = run_check(capsys)
    assert status == 1
    assert any(
        "screen.yaml:2:33: error: confirm calls are for external numbers" in line for line in err
    ), err


def ring_legs(config: Config, did: str) -> dict[str, LegPlan]:
    """The legs the planner rings for a call to `did`, by target."""
    facts = CallFacts("c1", "PJSIP/trunk-in-00000001", did, "+33612000001", "Jean")
    flow = plan_call(facts, config)
    assert isinstance(flow, Flow), flow
    [ring] = [step for step in flow.steps.values() if isinstance(step, RingStep)]
    return {leg.target: leg for leg in ring.legs}


def test_a_number_whisper_follows_the_called_number(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The shipped acme-sales route says `whisper: number`: its direct line and the switchboard
    # (menu, 2) reach it, and the callee hears which of the two rang.
    status, err = run_check(capsys)
    assert status == 0 and not any("whisper" in line for line in err), err
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None
    assert config.routes["acme-sales"].whisper_number
    direct = ring_legs(config, "+33170000012")
    assert {leg.whisper for leg in direct.values()} == {("sound:acme-whisper-sales",)}
    switchboard = config.numbers["+33170000030"]
    assert switchboard.whisper == ("sound:acme-whisper-switchboard",)
    # A route with a whisper of its own keeps it, whatever the number's.
    own = replace(
        config.routes["acme-sales"], whisper=("sound:acme-welcome",), whisper_number=False
    )
    config.route_of_number["+33170000012"] = own
    assert {leg.whisper for leg in ring_legs(config, "+33170000012").values()} == {
        ("sound:acme-welcome",)
    }


def test_a_block_whispers_for_each_of_its_numbers(example: Path, edit: Edit) -> None:
    edit(
        "sip-trunks.yaml",
        "        losing_carrier: Orange\n",
        "        losing_carrier: Orange\n        whisper: acme-welcome\n",
    )
    edit(
        "routing/acme.yaml",
        "    targets: [alice, bob]\n    timeout: 40",
        "    targets: [alice, bob]\n    timeout: 40\n    whisper: number",
    )
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None
    assert config.blocks["acme-direct"].whisper == ("sound:acme-welcome",)
    for did in ("+33170000100", "+33170000109"):
        number = config.numbers[did]
        config.numbers[did] = replace(number, status=NumberStatus.ACTIVE)  # before its port date
        legs = ring_legs(config, did)
        assert {leg.whisper for leg in legs.values()} == {("sound:acme-welcome",)}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "whisper: acme-whisper-sales}",
            "whisper: ../acme-whisper-sales}",
            "sip-trunks.yaml:33:74: error: prompt '../acme-whisper-sales' must be a sound file",
            id="not-a-sound-name",
        ),
        pytest.param(
            "whisper: acme-whisper-sales}",
            "whisper: acme-whisper-salse}",
            "sip-trunks.yaml:33:74: warning: prompt 'acme-whisper-salse' is not in the sounds",
            id="no-such-sound",
        ),
        pytest.param(
            ", whisper: acme-whisper-sales}",
            "}",
            "routing/acme-switchboard.yaml:31:14: warning: route 'acme-sales' whispers the "
            "called number's prompt, but +33170000012 has no `whisper:`",
            id="number-without-whisper",
        ),
    ],
)
def test_number_whisper_problems_are_placed(
    example: Path,
    edit: Edit,
    capsys: pytest.CaptureFixture[str],
    old: str,
    new: str,
    expected: str,
) -> None:
    edit("sip-trunks.yaml", old, new)
    status, err = run_check(capsys)
    assert any(line.startswith(expected) for line in err), err
    assert status == (1 if ": error: " in expected else 0)


def test_a_number_whisper_no_route_plays_is_a_warning(
    example: Path, edit: Edit, capsys: pytest.CaptureFixture[str]
) -> None:
    edit("routing/acme-switchboard.yaml", "    whisper: number", "    whisper: acme-welcome")
    status, err = run_check(capsys)
    assert status == 0
    expected = "this whisper is never played: no route says `whisper: number`"
    assert sum(expected in line for line in err) == 2, err
    assert any(line.startswith("sip-trunks.yaml:33:74: warning: this whisper") for line in err), err
