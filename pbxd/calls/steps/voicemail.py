"""The voicemail step: answer, greeting, beep, record; keep the message or drop the noise.

The recording is Asterisk's (`record` with maxDurationSeconds, maxSilenceSeconds and `#` to
finish, trace `voicemail_record`); a caller hanging up mid-message ends it with
RecordingFinished and the file is kept. A message shorter than the box's minimum (talk
time, when silence detection gives it) is dropped; a kept one is handed, by the name of
Asterisk's stored recording, to the voicemail back office (`MessageDesk`), which copies it
off Asterisk and mails it, on its own task. The call ends after the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import structlog

from pbxd.ari import Event, PlaybackFinished, RecordingFailed, RecordingFinished
from pbxd.calls import ids
from pbxd.calls.journal import MessageLeft, PromptStarted
from pbxd.calls.states import CallState
from pbxd.calls.steps.base import StepHandler
from pbxd.dialplan.flow import Mailbox, StepOutcome, VoicemailStep
from pbxd.vocabulary import HangupReason
from pbxd.voicemail.messages import keep_message

if TYPE_CHECKING:
    from pbxd.calls.session import CallSession

log = structlog.get_logger("pbxd.calls")

BEEP = "sound:beep"
# What a box without its own greeting plays, per language (Asterisk's core sounds).
DEFAULT_GREETING = "sound:vm-intro"
# Past the box's maximum, Asterisk ends the recording itself; ours is the backstop.
RECORD_BACKSTOP_SECONDS = 30.0
BACKSTOP_TIMER = "step_record_backstop"
# A live recording in these states still records: its RecordingFinished is to come.
LIVE_RECORDING_STATES = frozenset({"queued", "recording", "paused"})


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message a caller left, as the back office files it."""

    call_id: str
    did: str
    mailbox: Mailbox
    recording: str  # Asterisk's stored recording name
    seconds: int
    recorded_at: datetime
    caller_number: str | None
    caller_name: str | None
    timezone: str


class MessageDesk(Protocol):
    """The voicemail back office: takes a recording off Asterisk, files and mails it."""

    async def keep(self, message: NewMessage) -> str:
        """Queue the recording durably; the message id it will have in the box."""
        ...

    async def discard(self, recording: str, *, call_id: str = "", did: str = "") -> None:
        """Delete a recording too short to keep (of call `call_id` to `did`)."""
        ...


class Phase(StrEnum):
    """Where the step stands."""

    GREETING = "greeting"
    RECORDING = "recording"
    DONE = "done"


class VoicemailHandler(StepHandler[VoicemailStep]):
    """Runs one voicemail step."""

    phase = Phase.GREETING
    playback: str | None = None

    @property
    def recording(self) -> str:
        """The stored recording's name (one per call and step)."""
        return ids.recording_name(self.session.call_id, self.step.name)

    async def enter(self) -> StepOutcome | None:
        """Answer the caller, then the greeting and the beep as one playback."""
        session = self.session
        session.to(CallState.RECORDING)
        if session.record.answered_at is None and not await session.answer_caller(None):
            return None
        box = self.step.mailbox
        greeting = box.greeting or (DEFAULT_GREETING,)
        session.note(f"voicemail {box.name}: greeting")
        playback = session.next_playback()
        # Journaled before Asterisk is asked: a restart finds the greeting by its id.
        session.journal.add(PromptStarted(session.clock.now(), self.step.name, playback))
        self.playback = await session.play((*greeting, BEEP), playback)
        return None

    @classmethod
    def adopt(
        cls, step: VoicemailStep, session: CallSession, started: PromptStarted | None
    ) -> VoicemailHandler:
        """The handler of a voicemail step a previous run left its caller in; `started`: the
        greeting it journaled, if the journal kept it."""
        handler = cls(step, session)
        handler.playback = started.playback if started is not None else None
        return handler

    async def resume(self) -> StepOutcome | None:
        """After a restart, from what Asterisk says (the recording's name is the call's and
        the step's, the greeting's id journaled):

        - still recording: the message goes on, and is kept as usual at its end;
        - recorded meanwhile (the caller pressed #, or the box's maximum), caller still on
          the line: the stored recording is the message, kept;
        - greeting still playing: heard to its end, then the recording;
        - greeting over meanwhile: the caller heard the beep, the recording starts now;
        - greeting lost with the journal: the greeting again from the start.
        """
        session = self.session
        box = self.step.mailbox
        stopped = await session.stop_unrecorded_prompts()
        if await session.live_recording_state(self.recording) in LIVE_RECORDING_STATES:
            self.phase = Phase.RECORDING
            self.playback = None
            session.note(f"adopted after restart: voicemail {box.name}, still recording")
            log.info("voicemail_adopted", mailbox=box.name, phase="recording")
            session.arm(BACKSTOP_TIMER, box.max_seconds + RECORD_BACKSTOP_SECONDS)
            return None
        seconds = await session.stored_recording_seconds(self.recording)
        if seconds is not None:
            session.note(f"adopted after restart: voicemail {box.name}, recorded meanwhile")
            log.info("voicemail_adopted", mailbox=box.name, phase="recorded", seconds=seconds)
            self.phase = Phase.RECORDING
            return await self._recorded(seconds, None)
        playing = self.playback is not None and await session.playback_plays(self.playback)
        if self.playback is not None and not stopped:
            if playing:
                session.note(f"adopted after restart: voicemail {box.name}, greeting playing")
                log.info("voicemail_adopted", mailbox=box.name, phase="greeting")
                return None
            session.note(f"adopted after restart: voicemail {box.name}, recording from now")
            log.info("voicemail_adopted", mailbox=box.name, phase="record")
            self.playback = None
            return await self._record()
        if self.playback is not None and playing:
            await session.stop_playback(self.playback)
        self.playback = None
        session.note(f"adopted after restart: voicemail {box.name}, greeting again")
        log.info("voicemail_adopted", mailbox=box.name, phase="again")
        return await self.enter()

    async def on_event(self, event: Event) -> StepOutcome | None:
        """Greeting over: record. Recording over: keep or drop it, and end the call."""
        if isinstance(event, PlaybackFinished) and event.playback.id == self.playback:
            self.playback = None
            if self.session.caller_leaving:
                self.phase = Phase.DONE
                return StepOutcome.NO_MESSAGE  # hung up during the greeting
            return await self._record()
        if isinstance(event, RecordingFinished | RecordingFailed):
            if event.recording.name != self.recording or self.phase is not Phase.RECORDING:
                return None
            failed = isinstance(event, RecordingFailed)
            recording = event.recording
            return await self._recorded(
                None if failed else recording.duration,
                None if failed else recording.talking_duration,
            )
        return None

    async def on_timer(self, name: str, key: str) -> StepOutcome | None:
        """Asterisk never said the recording ended: stop it ourselves (its event follows)."""
        if name == BACKSTOP_TIMER and self.phase is Phase.RECORDING:
            await self.session.stop_recording(self.recording)
        return None

    async def on_caller_gone(self) -> StepOutcome | None:
        """A hangup mid-message ends the recording: its RecordingFinished says what was kept."""
        if self.phase is Phase.RECORDING:
            return None
        self.phase = Phase.DONE
        return StepOutcome.NO_MESSAGE

    async def _record(self) -> StepOutcome | None:
        session = self.session
        box = self.step.mailbox
        self.phase = Phase.RECORDING
        if not await session.record_caller(
            self.recording,
            max_seconds=box.max_seconds,
            silence_seconds=box.silence_seconds,
            finish_key=box.finish_key,
        ):
            self.phase = Phase.DONE
            return None
        session.note(f"voicemail {box.name}: recording")
        session.arm(BACKSTOP_TIMER, box.max_seconds + RECORD_BACKSTOP_SECONDS)
        return None

    async def _recorded(self, duration: int | None, talking: int | None) -> StepOutcome:
        session = self.session
        box = self.step.mailbox
        self.phase = Phase.DONE
        seconds = duration or 0
        if not keep_message(seconds, talking, box.min_seconds):
            outcome = StepOutcome.NO_MESSAGE if not seconds else StepOutcome.TOO_SHORT
            session.note(f"voicemail {box.name}: {outcome} ({seconds} s), dropped")
            await session.discard_recording(self.recording)
        else:
            message_id = await session.keep_message(
                NewMessage(
                    call_id=session.call_id,
                    did=session.did,
                    mailbox=box,
                    recording=self.recording,
                    seconds=seconds,
                    recorded_at=session.clock.now(),
                    caller_number=session.record.caller_number,
                    caller_name=session.record.caller_name,
                    timezone=session.flow_timezone,
                )
            )
            session.journal.add(
                MessageLeft(session.clock.now(), self.step.name, box.name, message_id, seconds)
            )
            session.note(f"voicemail {box.name}: message left ({seconds} s)")
            log.info("voicemail_left", mailbox=box.name, seconds=seconds, message=message_id)
            outcome = StepOutcome.LEFT
        await session.end_everything(HangupReason.NORMAL)
        return outcome
