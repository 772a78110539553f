"""`pbxd check` on confirm calls and whispers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pbxd.cli.main import main
from pbxd.config.compile import compile_config
from pbxd.config.files import NumberStatus
from pbxd.dialplan import CallFacts, Flow, RingStep, plan_call

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
