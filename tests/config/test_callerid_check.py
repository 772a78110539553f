"""`pbxd check` on caller-ID policies: per route, per target, per route entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxd.cli.main import main
from pbxd.config.compile import compile_config
from pbxd.dialplan.callerid import CallerIdRule, CallerIdShow

POLICIES = """\
country: FR
targets:
  desk: {softphone: PJSIP/desk, caller_id: number}
routes:
  - name: shown
    numbers: [09 72 10 00 01]
    targets: [desk, {target: ceo-mobile, caller_id: "01 70 00 00 01"}, support-mobile]
    caller_id: {number: caller, prefix: "[Acme] "}
"""


def run_check(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = main(["check"])
    return status, capsys.readouterr().err.splitlines()


def test_policies_compile(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (example / "routing" / "shown.yaml").write_text(
        POLICIES.replace("09 72 10 00 01", "01 70 00 00 02")
    )
    status, err = run_check(capsys)
    assert status == 0, err
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None
    route = config.routes["shown"]
    assert route.caller_id == CallerIdRule(prefix="[Acme] ")
    assert config.targets["desk"].caller_id == CallerIdRule(CallerIdShow.NUMBER)
    ceo = route.targets[1]
    assert ceo.caller_id == CallerIdRule(CallerIdShow.FIXED, "+33170000001")
    assert route.targets[2].caller_id is None


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            '"01 70 00 00 01"',
            '"06 99 99 99 99"',
            "7:53: error: caller_id: +33699999999 is not one of our numbers",
            id="not-our-number",
        ),
        pytest.param(
            "caller_id: number}",
            "caller_id: numbr}",
            "3:44: error: caller_id: 'numbr' is not a phone number",
            id="not-a-policy",
        ),
        pytest.param(
            '{number: caller, prefix: "[Acme] "}',
            '{show: caller, prefix: "[Acme] "}',
            "8:16: error: caller_id: unknown key 'show'",
            id="unknown-key",
        ),
        pytest.param(
            'prefix: "[Acme] "',
            "prefix: [a, b]",
            "8:16: error: caller_id: prefix must be printable text",
            id="prefix-not-text",
        ),
    ],
)
def test_policy_errors_are_placed(
    example: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, expected: str
) -> None:
    text = POLICIES.replace("09 72 10 00 01", "01 70 00 00 02")
    assert text.count(old) == 1
    (example / "routing" / "shown.yaml").write_text(text.replace(old, new))
    status, err = run_check(capsys)
    assert status == 1
    assert any(line.startswith(f"routing/shown.yaml:{expected}") for line in err), err
