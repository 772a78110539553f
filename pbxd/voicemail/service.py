"""The voicemail back office of a running daemon: the box store, the collector, the outbox.

Built from the settings by `CallService` (so `pbxd run` and `pbxd simulate` both have it):
the call core hands finished recordings to `collector.keep()` / `collector.discard()`.
"""

from __future__ import annotations

from pbxd.clock import Clock
from pbxd.config.model import DaemonSettings
from pbxd.voicemail.collector import RecordingCollector, StoredRecordings
from pbxd.voicemail.mail import Outbox
from pbxd.voicemail.store import MessageStore


class VoicemailService:
    """The store of every box, the collector feeding it, and the outbox if mail is set up."""

    def __init__(self, settings: DaemonSettings, recordings: StoredRecordings, clock: Clock):
        """Nothing runs before `start()`; e-mails are sent only with a `mail:` section."""
        self.store = MessageStore(settings.voicemail_folder)
        self.outbox = None if settings.mail is None else Outbox(self.store, settings.mail, clock)
        self.collector = RecordingCollector(self.store, recordings, clock, mail=self.outbox)

    def start(self) -> None:
        """Start both tasks (each takes the jobs a previous run left at once)."""
        self.collector.start()
        if self.outbox is not None:
            self.outbox.start()

    async def stop(self) -> None:
        """Stop both tasks; what is unfinished stays on disk for the next start."""
        await self.collector.stop()
        if self.outbox is not None:
            await self.outbox.stop()
