"""The message store: atomic, idempotent, listed newest first, safe against odd ids."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pbxd.sim.media import wav_bytes as make_wav
from pbxd.voicemail.messages import Message
from pbxd.voicemail.store import MessageNotFound, MessageStore

from .conftest import T0

DID = "+33170000001"


def message(n: int, *, did: str = DID) -> Message:
    return Message(
        f"vm-{n}",
        did,
        f"call-{n}",
        recorded_at=T0 + timedelta(minutes=n),
        duration=n,
        mailbox="reception",
    )


def test_saved_messages_list_newest_first_and_read_back(tmp_path: Path) -> None:
    store = MessageStore(tmp_path / "voicemail")
    for n in (1, 3, 2):
        assert store.save(message(n), make_wav(n)) is True
    store.save(message(9, did="+33170000002"), make_wav(1))
    assert [m.message_id for m in store.messages(DID)] == ["vm-3", "vm-2", "vm-1"]
    assert store.get(DID, "vm-2") == message(2)
    assert store.audio(DID, "vm-2") == make_wav(2)
    assert store.messages("+33999999999") == []


def test_saving_again_rewrites_nothing(tmp_path: Path) -> None:
    store = MessageStore(tmp_path)
    store.save(message(1), make_wav(1))
    assert store.save(message(1), b"other bytes") is False
    assert store.audio(DID, "vm-1") == make_wav(1)


def test_a_crash_between_audio_and_metadata_leaves_no_half_message(tmp_path: Path) -> None:
    store = MessageStore(tmp_path)
    store.save(message(1), make_wav(1))
    (tmp_path / DID / "vm-1.json").unlink()  # as if the metadata rename never happened
    (tmp_path / DID / ".vm-2.wav.x.tmp").write_bytes(b"half")  # an interrupted write
    assert store.messages(DID) == []
    assert not store.has(DID, "vm-1")
    assert store.save(message(1), make_wav(1)) is True  # the retry completes it
    assert [m.message_id for m in store.messages(DID)] == ["vm-1"]


def test_unreadable_metadata_is_skipped_not_fatal(tmp_path: Path) -> None:
    store = MessageStore(tmp_path)
    store.save(message(1), make_wav(1))
    store.save(message(2), make_wav(1))
    (tmp_path / DID / "vm-2.json").write_text("{not json")
    assert [m.message_id for m in store.messages(DID)] == ["vm-1"]
    with pytest.raises(MessageNotFound, match="unreadable"):
        store.get(DID, "vm-2")


def test_export_and_delete(tmp_path: Path) -> None:
    store = MessageStore(tmp_path / "vm")
    store.save(message(1), make_wav(1))
    dest = tmp_path / "out" / "message.wav"
    store.export(DID, "vm-1", dest)
    assert dest.read_bytes() == make_wav(1)
    assert store.delete(DID, "vm-1") == message(1)
    assert store.messages(DID) == [] and not (tmp_path / "vm" / DID / "vm-1.wav").exists()
    with pytest.raises(MessageNotFound):
        store.delete(DID, "vm-1")


@pytest.mark.parametrize("bad", ["../vm-1", "vm/1", "", ".hidden", "a..b"])
def test_ids_that_are_not_ids_find_nothing(tmp_path: Path, bad: str) -> None:
    store = MessageStore(tmp_path)
    with pytest.raises(MessageNotFound):
        store.get(DID, bad)
