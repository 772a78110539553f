"""Voicemail messages on disk: one folder per number, a WAV and a JSON file per message.

    <root>/<did>/<message_id>.wav    the audio, as Asterisk recorded it
    <root>/<did>/<message_id>.json   its `Message` metadata

Every file is written to a temporary name and renamed into place, the metadata last: a
message exists once its JSON does, so a crash mid-way leaves no half message in the list
(the next save of the same id completes it). Methods are blocking file I/O: the daemon calls
them through `asyncio.to_thread`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import structlog

from pbxd.voicemail.messages import MESSAGE_ID, Message

_log = structlog.get_logger(logger_name=__name__)


class MessageNotFound(LookupError):
    """No message with that id in that number's box."""


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class MessageStore:
    """The messages of every box, under `root` (the state directory's `voicemail/` by default)."""

    def __init__(self, root: Path) -> None:
        """Use `root`; it is created on the first save."""
        self.root = root

    def _box(self, did: str) -> Path:
        if not did or "/" in did or did.startswith("."):
            raise ValueError(f"not a number: {did!r}")
        return self.root / did

    def _paths(self, did: str, message_id: str) -> tuple[Path, Path]:
        if not MESSAGE_ID.match(message_id) or ".." in message_id:
            raise MessageNotFound(f"no message {message_id!r}: not a message id")
        box = self._box(did)
        return box / f"{message_id}.wav", box / f"{message_id}.json"

    def save(self, message: Message, wav: bytes) -> bool:
        """Keep `message`; False when it was already kept (nothing is rewritten)."""
        wav_path, meta_path = self._paths(message.did, message.message_id)
        if meta_path.is_file() and wav_path.is_file():
            return False
        write_atomically(wav_path, wav)
        meta = json.dumps(message.to_json(), indent=2, ensure_ascii=False) + "\n"
        write_atomically(meta_path, meta.encode())
        return True

    def has(self, did: str, message_id: str) -> bool:
        """Whether the message is fully kept (audio and metadata)."""
        wav_path, meta_path = self._paths(did, message_id)
        return wav_path.is_file() and meta_path.is_file()

    def messages(self, did: str) -> list[Message]:
        """The messages of a number's box, newest first; unreadable metadata is logged, skipped."""
        box = self._box(did)
        if not box.is_dir():
            return []
        found: list[Message] = []
        for meta_path in box.glob("*.json"):
            if meta_path.name.startswith("."):
                continue
            try:
                message = Message.from_json(json.loads(meta_path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                _log.warning("voicemail_metadata_unreadable", path=str(meta_path), error=str(exc))
                continue
            if message.did == did and (box / f"{message.message_id}.wav").is_file():
                found.append(message)
        found.sort(key=lambda m: (m.recorded_at, m.message_id), reverse=True)
        return found

    def get(self, did: str, message_id: str) -> Message:
        """One message; MessageNotFound if that box has no such message."""
        wav_path, meta_path = self._paths(did, message_id)
        if not (wav_path.is_file() and meta_path.is_file()):
            raise MessageNotFound(f"no message {message_id} for {did}")
        try:
            return Message.from_json(json.loads(meta_path.read_text(encoding="utf-8")))
        except ValueError as exc:
            raise MessageNotFound(f"message {message_id} for {did} is unreadable: {exc}") from None

    def audio(self, did: str, message_id: str) -> bytes:
        """The WAV bytes of a message; MessageNotFound if it is not there."""
        self.get(did, message_id)
        return self._paths(did, message_id)[0].read_bytes()

    def export(self, did: str, message_id: str, dest: Path) -> Message:
        """Copy a message's WAV to `dest` (atomically: never a half-written file)."""
        message = self.get(did, message_id)
        write_atomically(dest, self.audio(did, message_id))
        return message

    def delete(self, did: str, message_id: str) -> Message:
        """Remove a message (metadata first, so it leaves the list even if a crash follows)."""
        message = self.get(did, message_id)
        wav_path, meta_path = self._paths(did, message_id)
        meta_path.unlink(missing_ok=True)
        wav_path.unlink(missing_ok=True)
        return message
