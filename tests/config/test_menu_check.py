"""`pbxd check` on voice menus: syntax, options, branch targets and the goto graph, each
error placed at FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxd.cli.main import main
from pbxd.config.compile import compile_config
from pbxd.config.files import FallbackAction, HangupReason

MENU = """\
routes:
  - name: lobby
    numbers: ["+33170000002"]
    menu:
      prompt: acme-welcome
      options:
        1: deals
        2: {goto: helpdesk}
        0: {voicemail: desk}
        "*": repeat
        42: {hangup: busy}
      timeout: 6
      retries: 3
      invalid_prompt: [acme-welcome]
      fallback: {goto: deals}

  - name: deals
    targets: [alice]
    no_answer: {goto: lobby}

  - name: helpdesk
    targets: [bob]

mailboxes:
  desk: {}
"""


def write(example: Path, text: str) -> None:
    (example / "routing" / "menu.yaml").write_text(text)


def run_check(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = main(["check"])
    return status, capsys.readouterr().err.splitlines()


def test_a_menu_compiles(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(example, MENU)
    status, err = run_check(capsys)
    assert status == 0, err
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None
    menu = config.routes["lobby"].menu
    assert menu is not None
    assert menu.prompts == ("sound:acme-welcome",)
    assert sorted(menu.options) == ["0", "1", "2", "42"]
    assert menu.options["1"].action is FallbackAction.GOTO and menu.options["1"].route == "deals"
    assert menu.options["0"].mailbox == "desk"
    assert menu.options["42"].cause is HangupReason.BUSY
    assert menu.repeat == frozenset({"*"})
    assert (menu.timeout, menu.digit_timeout, menu.retries) == (6, 3, 3)
    assert menu.fallback.route == "deals"


# (old text in MENU, new text, the diagnostic expected: "LINE:COLUMN: severity: message")
MENU_ERRORS = [
    pytest.param(
        "1: deals",
        "1: deels",
        "7:12: error: menu option 1: goto 'deels' leads nowhere: no such route "
        "(did you mean 'deals'?)",
        id="unknown-branch-target",
    ),
    pytest.param(
        "2: {goto: helpdesk}",
        "2: {goto: helpdsk}",
        "8:12: error: menu option 2: goto 'helpdsk' leads nowhere: no such route "
        "(did you mean 'helpdesk'?)",
        id="unknown-goto",
    ),
    pytest.param(
        "0: {voicemail: desk}",
        "0: {voicemail: dsk}",
        "9:12: error: menu option 0: voicemail box 'dsk' does not exist (define it under "
        "`mailboxes:`) (did you mean 'desk'?)",
        id="unknown-box",
    ),
    pytest.param(
        "fallback: {goto: deals}",
        "fallback: {goto: dealz}",
        "15:17: error: menu fallback: goto 'dealz' leads nowhere: no such route "
        "(did you mean 'deals'?)",
        id="unknown-fallback",
    ),
    pytest.param(
        "42: {hangup: busy}",
        "4x: {hangup: busy}",
        "11:9: error: menu option '4x' must be 1 to 8 keys of the keypad",
        id="not-a-key",
    ),
    pytest.param(
        "42: {hangup: busy}",
        "42: [deals]",
        "11:13: error: menu option 42: write a route name, `repeat`, or one action",
        id="option-not-an-action",
    ),
    pytest.param(
        "timeout: 6",
        "timeout: 0",
        "12:16: error: menu timeout must be 1 to 60 seconds, not 0",
        id="zero-timeout",
    ),
    pytest.param(
        "retries: 3",
        "retries: 99",
        "13:16: error: menu retries must be 0 to 10, not 99",
        id="too-many-retries",
    ),
    pytest.param(
        "      prompt: acme-welcome\n",
        "",
        "5:7: error: missing required key 'prompt'",
        id="no-prompt",
    ),
    pytest.param(
        "    menu:\n",
        "    targets: [alice]\n    menu:\n",
        "5:5: error: route 'lobby' has a menu and targets",
        id="menu-and-targets",
    ),
    pytest.param(
        "      timeout: 6",
        "      timeout: 6\n      tiemout: 3",
        "13:7: error: ",
        id="unknown-key",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), MENU_ERRORS)
def test_menu_error_is_placed(
    example: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, expected: str
) -> None:
    assert MENU.count(old) == 1
    write(example, MENU.replace(old, new))
    status, err = run_check(capsys)
    assert status == 1
    assert any(line.startswith(f"routing/menu.yaml:{expected}") for line in err), err
    # A broken menu route is not reported again by the gotos that lead to it.
    assert not [line for line in err if "'lobby' leads nowhere" in line], err


def test_a_loop_through_a_menu_waits(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The menu waits for the caller's keys: going back to it is a caller choosing, not a spin.
    write(
        example,
        """\
routes:
  - name: top
    numbers: ["+33170000002"]
    menu: {prompt: acme-welcome, options: {1: back}}
  - name: back
    then: {goto: top}
""",
    )
    status, err = run_check(capsys)
    assert status == 0, err


def test_routes_only_a_menu_reaches_are_reached(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(example, MENU)
    status, err = run_check(capsys)
    assert not [line for line in err if "never reached" in line], err
    assert status == 0
