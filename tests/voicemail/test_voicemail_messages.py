"""Pure rules about messages: what is kept, their ids, their length, their metadata."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pbxd.voicemail.messages import (
    MESSAGE_ID,
    Message,
    keep_message,
    message_id_of,
)


@pytest.mark.parametrize(
    ("duration", "talking", "minimum", "kept"),
    [
        (3, 3, 2, True),
        (2, None, 2, True),  # no silence detection: the length decides
        (1, None, 2, False),  # hung up at the beep
        (10, 0, 2, False),  # ten seconds of silence is not a message
        (10, 1.5, 2, False),
        (1, 5, 2, False),  # talk is never more than the recording
        (0, None, 0, True),  # a box that keeps everything
    ],
)
def test_keep_message(duration: float, talking: float | None, minimum: float, kept: bool) -> None:
    assert keep_message(duration, talking, minimum) is kept


def test_message_ids_are_stable_and_safe() -> None:
    assert message_id_of("1733.42", "vm-1733.42") == "vm-1733.42"
    odd = message_id_of("1733.42", "voicemail/acme reception")
    assert odd == message_id_of("1733.42", "voicemail/acme reception")  # same inputs, same id
    assert odd != message_id_of("1733.43", "voicemail/acme reception")
    assert MESSAGE_ID.match(odd) and odd.startswith("vm-")
    assert message_id_of("c", "../../etc/passwd").startswith("vm-")


def test_metadata_round_trips_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    message = Message(
        "vm-1",
        "+33170000001",
        "1733.42",
        recorded_at=datetime(2026, 12, 24, 20, 0, tzinfo=paris),
        duration=12,
        mailbox="reception",
        caller_number="+33612345678",
    )
    data = message.to_json()
    assert data["recorded_at"] == "2026-12-24T19:00:00+00:00"
    back = Message.from_json(data)
    assert back == message and back.recorded_at.tzinfo == UTC


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ([], "must be a JSON object"),
        ({"message_id": "x"}, "lacks"),
        (
            {
                "message_id": "../x",
                "did": "+33170000001",
                "call_id": "c",
                "recorded_at": "2026-12-24T19:00:00+00:00",
                "duration": 1,
                "mailbox": "m",
            },
            "bad voicemail message id",
        ),
        (
            {
                "message_id": "x",
                "did": "+33170000001",
                "call_id": "c",
                "recorded_at": "2026-12-24T19:00:00",
                "duration": 1,
                "mailbox": "m",
            },
            "aware",
        ),
    ],
)
def test_bad_metadata_is_refused_by_name(data: object, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        Message.from_json(data)
