"""`pbxd voicemail NUMBER`: list in the number's zone, export a WAV, delete; one-line errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxd.cli.main import main
from pbxd.sim.media import wav_bytes as make_wav
from pbxd.voicemail.messages import Message
from pbxd.voicemail.store import MessageStore

DID = "+33170000001"


@pytest.fixture
def box(example: Path) -> MessageStore:
    """Two messages on the reception number, in the default folder (var/voicemail)."""
    store = MessageStore(example / "var" / "voicemail")
    for n, (when, caller) in enumerate(
        [
            (datetime(2026, 12, 24, 19, 0, tzinfo=UTC), "+33612345678"),  # 20:00 CET
            (datetime(2026, 7, 14, 6, 30, tzinfo=UTC), None),  # 08:30 CEST, withheld
        ]
    ):
        store.save(
            Message(f"vm-{n}", DID, f"call-{n}", when, 3 + n, "reception", caller_number=caller),
            make_wav(3 + n),
        )
    return store


def test_list_shows_messages_newest_first_in_the_numbers_zone(
    box: MessageStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["voicemail", "01", "70", "00", "00", "01"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{DID}: 2 message(s), times in Europe/Paris"
    assert out[1].split() == ["id", "received", "caller", "length", "box", "call"]
    assert out[3].split() == [
        *("vm-0", "2026-12-24", "20:00:00", "CET", "+33612345678", "0:03", "reception"),
        "call-0",
    ]
    assert out[4].split()[:6] == ["vm-1", "2026-07-14", "08:30:00", "CEST", "anonymous", "0:04"]


def test_json_has_local_and_utc_times(
    box: MessageStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["voicemail", DID, "--format", "json"]) == 0
    messages = json.loads(capsys.readouterr().out)
    assert [m["message_id"] for m in messages] == ["vm-0", "vm-1"]
    assert messages[0]["recorded_at"] == "2026-12-24T20:00:00+01:00"
    assert messages[0]["recorded_at_utc"] == "2026-12-24T19:00:00+00:00"
    assert messages[1]["caller_number"] is None and messages[1]["duration"] == 4


def test_export_writes_the_wav_and_delete_removes_the_message(
    box: MessageStore, example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["voicemail", DID, "--export", "vm-1", "out/message.wav"]) == 0
    assert (example / "out" / "message.wav").read_bytes() == make_wav(4)
    assert "vm-1: 0:04 written to out/message.wav" in capsys.readouterr().out
    assert main(["voicemail", DID, "--delete", "vm-1"]) == 0
    assert [m.message_id for m in box.messages(DID)] == ["vm-0"]


@pytest.mark.parametrize(
    ("argv", "status", "error"),
    [
        (["--delete", "vm-9"], 1, "pbxd voicemail: no message vm-9 for +33170000001"),
        (["--export", "../../etc/passwd", "x.wav"], 1, "not a message id"),
        (["--export", "vm-0", "/proc/nope/x.wav"], 2, "pbxd voicemail: cannot"),
    ],
)
def test_errors_are_one_clear_line(
    box: MessageStore,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    status: int,
    error: str,
) -> None:
    assert main(["voicemail", DID, *argv]) == status
    err = capsys.readouterr().err
    assert error in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_number_that_is_not_one(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["voicemail", "hello"]) == 1
    assert capsys.readouterr().err == "pbxd voicemail: 'hello' is not a phone number we can read\n"


def test_an_empty_box(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["voicemail", DID]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "(no messages)"
