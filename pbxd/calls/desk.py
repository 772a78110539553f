"""The voicemail back office as the call core sees it: a `MessageDesk` over the collector.

The voicemail step names a kept message by Asterisk's stored recording; the collector
(`pbxd.voicemail.collector`) copies it off Asterisk, files it and mails it, on its own task.
"""

from __future__ import annotations

from pbxd.calls.steps.voicemail import NewMessage
from pbxd.voicemail.collector import RecordingCollector
from pbxd.voicemail.messages import Message, message_id_of


class CollectorDesk:
    """`MessageDesk` over a `RecordingCollector`."""

    def __init__(self, collector: RecordingCollector) -> None:
        self.collector = collector

    async def keep(self, message: NewMessage) -> str:
        """Queue the recording (durable once this returns); the message's id in its box."""
        message_id = message_id_of(message.call_id, message.recording)
        await self.collector.keep(
            message.recording,
            Message(
                message_id=message_id,
                did=message.did,
                call_id=message.call_id,
                recorded_at=message.recorded_at,
                duration=message.seconds,
                mailbox=message.mailbox.name,
                caller_number=message.caller_number,
                caller_name=message.caller_name,
            ),
            email=message.mailbox.email,
            timezone=message.timezone,
        )
        return message_id

    async def discard(self, recording: str) -> None:
        """Have the collector delete a recording too short to keep."""
        await self.collector.discard(recording)
