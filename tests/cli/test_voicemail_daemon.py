"""The daemon's voicemail back office: what a previous run left is copied and mailed at start."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from pbxd.ari.errors import AriUnavailable
from pbxd.calls.runtime import AriEndpoint, CallService
from pbxd.cdr.store import CdrStore
from pbxd.clock import RealClock
from pbxd.config.compile import compile_config
from pbxd.sim import AriSimulator
from pbxd.sim.media import wav_bytes
from pbxd.voicemail.collector import RecordingCollector
from pbxd.voicemail.messages import Message
from pbxd.voicemail.store import MessageStore
from tests.voicemail.smtp import Mailroom, SmtpServer

DID = "+33170000001"


class AsteriskAway:
    """The previous run's view of ARI at its end: nothing answers."""

    async def fetch(self, name: str) -> bytes:
        raise AriUnavailable("ARI unreachable", "GET", name)

    async def delete(self, name: str) -> None:
        raise AriUnavailable("ARI unreachable", "DELETE", name)


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait for the service's own tasks (bounded: a hang fails, time never decides)."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def test_pbxd_run_collects_and_mails_a_message_the_last_run_could_not(
    example: Path,
) -> None:
    room = Mailroom()
    smtp = SmtpServer(room)
    await smtp.start()
    with (example / "pbxd.yaml").open("a") as f:
        f.write(f"mail: {{host: 127.0.0.1, port: {smtp.port}, security: none, ")
        f.write("from_address: pbxd@acme.example}\n")
    config = compile_config(example / "pbxd.yaml").config
    assert config is not None
    folder = config.settings.voicemail_folder
    assert folder == example / "var" / "voicemail"

    # The last run: the caller left a message, then Asterisk went away before it was copied.
    message = Message("vm-1733.42", DID, "1733.42", RealClock().now(), 4, "reception")
    last_run = RecordingCollector(MessageStore(folder), AsteriskAway(), RealClock())
    await last_run.keep("vm-1733.42", message, email="desk@acme.example", timezone="Europe/Paris")
    assert await last_run.collect_due() == 0

    sim = AriSimulator()
    sim.recordings.add_stored("vm-1733.42", 4.0)
    url = await sim.start()
    cdr = await CdrStore.open(f"sqlite:///{example / 'cdr.db'}")
    service = CallService(config, AriEndpoint(url, "pbxd", "pbxd-secret", "pbxd"), cdr, RealClock())
    try:
        await service.start()
        assert service.voicemail is not None
        store = service.voicemail.store
        await _until(lambda: store.has(DID, "vm-1733.42"), "the message copied")
        await _until(lambda: len(room.received) == 1, "the e-mail")
        await _until(lambda: "vm-1733.42" not in sim.recordings.stored, "deleted on Asterisk")
    finally:
        await service.stop()
        await cdr.close()
        await sim.stop()
        await smtp.stop()
    assert store.audio(DID, "vm-1733.42") == wav_bytes(4.0)
    [mail] = room.received
    assert mail["To"] == "desk@acme.example"
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_content() == wav_bytes(4.0)
