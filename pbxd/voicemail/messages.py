"""A voicemail message as plain data, and the pure rules about messages.

A message is identified by `message_id`, derived from the call and the recording's name, so
that copying it off Asterisk again (after a crash, a retry) lands on the same message.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# What a message id may look like: safe as a file name and on a command line.
MESSAGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# A message shorter than this (seconds of talk) is noise: a caller who hung up at the beep.
DEFAULT_MIN_SECONDS = 2


def keep_message(duration: float, talking_duration: float | None, minimum: float) -> bool:
    """Whether a recording is worth keeping: enough talk (or length, when talk is unknown).

    `talking_duration` is Asterisk's (RecordingFinished, with silence detection on); ten
    seconds of silence before the caller hangs up is not a message.
    """
    heard = duration if talking_duration is None else min(duration, talking_duration)
    return heard >= minimum


# pbxd records WAV (`record` format wav): Asterisk's 44-byte header, then 8 kHz 16-bit mono.
WAV_HEADER_BYTES = 44
WAV_BYTES_A_SECOND = 16_000


def wav_seconds(size: int) -> int:
    """Whole seconds of a WAV recording of `size` bytes, as Asterisk counts `duration`."""
    return max(0, size - WAV_HEADER_BYTES) // WAV_BYTES_A_SECOND


def message_id_of(call_id: str, recording: str) -> str:
    """The id of the message a call left as Asterisk's stored recording `recording`.

    The recording's own name when it is a safe file name (pbxd names them), else a digest of
    both: the same inputs always give the same id.
    """
    if MESSAGE_ID.match(recording) and ".." not in recording:
        return recording
    digest = hashlib.sha256(f"{call_id}\0{recording}".encode()).hexdigest()[:20]
    return f"vm-{digest}"


@dataclass(frozen=True, slots=True)
class Message:
    """A voicemail message in a number's box. Times are aware UTC."""

    message_id: str
    did: str
    call_id: str
    recorded_at: datetime
    duration: int  # whole seconds
    mailbox: str
    caller_number: str | None = None
    caller_name: str | None = None

    def __post_init__(self) -> None:
        """Refuse what would make a bad file name or an ambiguous time."""
        if not MESSAGE_ID.match(self.message_id) or ".." in self.message_id:
            raise ValueError(f"bad voicemail message id {self.message_id!r}")
        if self.recorded_at.utcoffset() is None:
            raise ValueError("a message's time must be aware (UTC)")
        if self.duration < 0:
            raise ValueError("a message's duration is never negative")

    def to_json(self) -> dict[str, Any]:
        """The metadata file's content."""
        return {
            "message_id": self.message_id,
            "did": self.did,
            "call_id": self.call_id,
            "recorded_at": self.recorded_at.astimezone(UTC).isoformat(),
            "duration": self.duration,
            "mailbox": self.mailbox,
            "caller_number": self.caller_number,
            "caller_name": self.caller_name,
        }

    @classmethod
    def from_json(cls, data: Any) -> Message:
        """Read a metadata file's content; ValueError says what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("voicemail metadata must be a JSON object")
        try:
            recorded = datetime.fromisoformat(str(data["recorded_at"]))
            return cls(
                message_id=str(data["message_id"]),
                did=str(data["did"]),
                call_id=str(data["call_id"]),
                recorded_at=recorded.astimezone(UTC) if recorded.tzinfo else recorded,
                duration=int(data["duration"]),
                mailbox=str(data["mailbox"]),
                caller_number=_optional(data.get("caller_number")),
                caller_name=_optional(data.get("caller_name")),
            )
        except KeyError as exc:
            raise ValueError(f"voicemail metadata lacks {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad voicemail metadata: {exc}") from None


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)
