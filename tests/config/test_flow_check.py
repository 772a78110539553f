"""`pbxd check` on call flows: hours, mailboxes, greetings, fallbacks and the goto graph."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from pbxd.cli.main import main
from pbxd.config.compile import compile_config
from pbxd.config.files import FallbackAction, HangupReason

FLOWS = """\
country: FR

hours:
  office:
    weekly:
      mon-fri: [09:00-12:30, 14:00-18:00]
    holidays: FR
    closed:
      - 2026-12-28 to 2027-01-01
      - {date: 12-24, from: "12:00"}

mailboxes:
  front-desk:
    email: reception@acme.example
    greeting: [vm-front-desk]
    max_seconds: 120
    min_seconds: 2

routes:
  - name: front
    numbers: [01 70 00 00 02]
    hours: office
    closed: {voicemail: front-desk}
    greeting: {play: [welcome], answer: false}
    targets: [alice]
    timeout: 20
    no_answer: {action: goto, route: overflow}
    busy: {voicemail: front-desk}
    unavailable: {goto: overflow}

  - name: overflow
    targets: [ceo-mobile]
    timeout: 25
    no_answer: {voicemail: front-desk}
"""


def write_flows(example: Path, text: str = FLOWS, name: str = "flows.yaml") -> Path:
    path = example / "routing" / name
    path.write_text(text)
    return path


def run_check(capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    status = main(["check"])
    return status, capsys.readouterr().err.splitlines()


def test_a_rich_flow_compiles(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_flows(example)
    status, err = run_check(capsys)
    assert status == 0, err
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None
    front = config.routes["front"]
    assert front.hours is not None and front.hours.floats
    assert front.closed is not None and front.closed.action is FallbackAction.VOICEMAIL
    assert front.closed.mailbox == "front-desk"
    assert front.greeting is not None and front.greeting.prompts == ("sound:welcome",)
    assert front.greeting.answer is False
    assert front.no_answer.action is FallbackAction.GOTO and front.no_answer.route == "overflow"
    assert front.busy.mailbox == "front-desk"
    overflow = config.routes["overflow"]
    assert overflow.busy.action is FallbackAction.HANGUP
    assert overflow.busy.cause is HangupReason.BUSY  # the default keeps today's behaviour
    assert overflow.unavailable.cause is HangupReason.CONGESTION
    box = config.mailboxes["front-desk"]
    assert (box.max_seconds, box.min_seconds, box.greeting) == (120, 2, ("sound:vm-front-desk",))


def test_a_mailbox_without_greeting_plays_asterisks_own(example: Path) -> None:
    write_flows(example, FLOWS.replace("    greeting: [vm-front-desk]\n", "    language: fr\n"))
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None
    box = config.mailboxes["front-desk"]
    assert (box.greeting, box.language) == (("sound:vm-intro",), "fr")


def test_todays_no_answer_hangup_still_reads(example: Path) -> None:
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None
    support = config.routes["support-line"]
    assert support.no_answer.action is FallbackAction.HANGUP
    assert support.no_answer_cause is HangupReason.BUSY


# (old text in FLOWS, new text, the diagnostic expected: "LINE:COLUMN: severity: message")
GRAPH_ERRORS = [
    pytest.param(
        "no_answer: {action: goto, route: overflow}",
        "no_answer: {action: goto, route: overfow}",
        "27:16: error: no_answer: goto 'overfow' leads nowhere: no such route "
        "(did you mean 'overflow'?)",
        id="branch-leads-nowhere",
    ),
    pytest.param(
        "busy: {voicemail: front-desk}",
        "busy: {voicemail: frontdesk}",
        "28:11: error: busy: voicemail box 'frontdesk' does not exist (define it under "
        "`mailboxes:`) (did you mean 'front-desk'?)",
        id="voicemail-with-no-box",
    ),
    pytest.param(
        "busy: {voicemail: front-desk}",
        "busy: {action: voicemail}",
        "28:11: error: busy: a voicemail needs a box (`voicemail: BOX`)",
        id="voicemail-without-box-name",
    ),
    pytest.param(
        "      mon-fri: [09:00-12:30, 14:00-18:00]\n",
        "",
        "4:3: error: opening hours 'office' are never open: add `weekly:` hours",
        id="hours-never-open",
    ),
    pytest.param(
        "holidays: FR",
        "holidays: XK2",
        "7:15: error: no public holidays known for country 'XK2'",
        id="unknown-holiday-country",
    ),
    pytest.param(
        "hours: office\n",
        "hours: ofice\n",
        "22:12: error: unknown hours 'ofice' (did you mean 'office'?)",
        id="unknown-hours",
    ),
    pytest.param(
        "    closed: {voicemail: front-desk}\n",
        "",
        "22:5: error: route 'front' has opening hours but no `closed:` (say where calls go "
        "outside them: voicemail, goto or hangup)",
        id="hours-without-closed",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), GRAPH_ERRORS)
def test_graph_error_is_placed(
    example: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, expected: str
) -> None:
    assert FLOWS.count(old) == 1
    write_flows(example, FLOWS.replace(old, new))
    status, err = run_check(capsys)
    assert status == 1
    assert any(line.startswith(f"routing/flows.yaml:{expected}") for line in err), err


def test_goto_loop_with_no_step_that_waits(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_flows(
        example,
        """\
routes:
  - name: ping
    numbers: ["+33170000002"]
    then: {goto: pong}
  - name: pong
    then: {goto: ping}
""",
    )
    status, err = run_check(capsys)
    assert status == 1
    assert (
        "routing/flows.yaml:2:5: error: goto loop with no step that waits: ping → pong → ping "
        "(ring, greet or take a voicemail somewhere in it)"
    ) in err


def test_loop_through_a_ringing_route_is_allowed(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The caller hears ringing on every turn and may hang up: a wait, not a spin.
    write_flows(
        example,
        """\
routes:
  - name: ping
    numbers: ["+33170000002"]
    then: {goto: pong}
  - name: pong
    targets: [alice]
    no_answer: {goto: ping}
""",
    )
    status, err = run_check(capsys)
    assert status == 0, err


def test_route_nothing_reaches(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_flows(
        example,
        FLOWS + "  - name: orphan\n    targets: [alice]\n",
    )
    status, err = run_check(capsys)
    assert status == 1
    assert (
        "routing/flows.yaml:35:5: error: route 'orphan' is never reached: it covers no number "
        "(add `numbers:` or `block:`) and no goto leads to it"
    ) in err


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "    timeout: 25\n",
            "    timeout: 25\n    then: {hangup: normal}\n",
            "34:5: warning: `then:` is never used",
        ),
        (
            "    holidays: FR\n",
            "    holidays: FR\n  spare:\n    weekly: {daily: 00:00-24:00}\n",
            "8:3: warning: hours 'spare' are not used by any route",
        ),
    ],
)
def test_unreachable_branches_are_warnings(
    example: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, expected: str
) -> None:
    write_flows(example, FLOWS.replace(old, new, 1))
    status, err = run_check(capsys)
    assert status == 0
    assert any(line.startswith(f"routing/flows.yaml:{expected}") for line in err), err


def _wav(path: Path) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 800)


def test_missing_prompt_in_sounds_folder(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sounds = example / "sounds"
    sounds.mkdir()
    _wav(sounds / "welcome.wav")
    with (example / "pbxd.yaml").open("a") as f:
        f.write("sounds_dir: sounds\n")
        # The box mails its messages: without an SMTP server that would be a warning too.
        f.write("mail: {host: smtp.acme.example, from_address: pbxd@acme.example}\n")
    write_flows(example)
    status, err = run_check(capsys)
    assert status == 0
    assert err == [
        "routing/flows.yaml:15:16: warning: prompt 'vm-front-desk' is not in the sounds folder "
        f"{sounds} (expected vm-front-desk.wav or another Asterisk format)"
    ]


def test_prompt_name_cannot_escape_the_sounds_folder(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_flows(example, FLOWS.replace("play: [welcome]", "play: [../../etc/passwd]"))
    status, err = run_check(capsys)
    assert status == 1
    assert any("prompt '../../etc/passwd' must be a sound file name" in line for line in err)
