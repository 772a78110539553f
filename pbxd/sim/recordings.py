"""Recordings as Asterisk 22 makes them: `POST /channels/{id}/record`, live and stored
recordings, and the events (voicemail_record.jsonl).

- The answer is 201 LiveRecording `queued`; RecordingStarted follows (it may beat the answer),
  once the channel's playbacks are over (its Stasis thread runs one command at a time).
- A recording ends on its terminating key (RecordingFinished ~165 ms after the key's
  ChannelDtmfReceived), on `maxSilenceSeconds` of silence (the file keeps 200 ms of it), on
  `maxDurationSeconds`, on `stop`, or when the caller hangs up: always RecordingFinished
  `done` (never RecordingFailed), and the file is kept. `DELETE /recordings/live/{name}`
  cancels: RecordingFinished `canceled`, no file.
- Keys other than the terminator go on being reported and do not stop it; their 160 ms of
  DTMF are missing from the audio (vm-test-2: 2.84 s recorded, 2.67 s written).
- `duration` is whole seconds written (truncated); `talking_duration` and `silence_duration`
  only when `maxSilenceSeconds` > 0.
- A second record under the name of a live recording: 409, whatever `ifExists` says; a stored
  one: 409 with `ifExists=fail` (the default), replaced with `overwrite`, extended with `append`.
- Stored files are WAV (44-byte header + 16000 bytes a second) or raw, served as bytes.

What the caller says is the far end's script: `PeerScript.talk` seconds of speech from the
first recording's start (then silence, or a hangup with `hangup_after_talk`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Literal

from .media import wav_bytes
from .model import JsonDict, SimChannel

if TYPE_CHECKING:
    import asyncio

    from .pbx import SimPbx

log = logging.getLogger(__name__)

# Delays read off voicemail_record.jsonl (virtual seconds).
RECORDING_START_DELAY = 0.0  # the channel thread starts it at once (often before the answer)
RECORDING_KEY_DELAY = 0.165  # terminating key's ChannelDtmfReceived -> RecordingFinished
DTMF_AUDIO_SECONDS = 0.16  # a key's DTMF replaces that much audio
SILENCE_KEPT_SECONDS = 0.2  # Asterisk trims trailing silence but 200 ms
HANGUP_AFTER_TALK = 0.5  # a caller done talking hangs up a moment later

# Formats Asterisk can record in (ast_get_format_for_file_ext) and their stored bytes a second.
RECORDING_FORMATS: dict[str, int] = {
    "wav": 16000,
    "sln": 16000,
    "slin": 16000,
    "ulaw": 8000,
    "alaw": 8000,
    "gsm": 1650,
    "g722": 8000,
    "wav16": 32000,
}
CONTENT_TYPES = {"wav": "audio/wav", "wav16": "audio/wav", "gsm": "audio/gsm"}
TERMINATE_ON = frozenset({"none", "any", "*", "#"})
IF_EXISTS = frozenset({"fail", "overwrite", "append"})
DTMF_KEYS = "0123456789*#ABCD"

RecordingState = Literal["queued", "recording", "paused", "done", "failed", "canceled"]


class RecordingError(Exception):
    """A request the recording resource refuses: HTTP status and Asterisk's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class RecordOptions:
    """The parameters of `POST /channels/{id}/record`, as Asterisk reads them."""

    name: str
    file_format: str
    max_duration: int = 0
    max_silence: int = 0
    if_exists: str = "fail"
    beep: bool = False
    terminate_on: str = "none"

    def check(self) -> None:
        """Asterisk's checks, in its order (RecordingError on the first failure)."""
        if self.max_duration < 0:
            raise RecordingError(400, "max_duration_seconds cannot be negative")
        if self.max_silence < 0:
            raise RecordingError(400, "max_silence_seconds cannot be negative")
        if self.terminate_on not in TERMINATE_ON:
            raise RecordingError(400, "terminateOn invalid")
        if self.if_exists not in IF_EXISTS:
            raise RecordingError(400, "ifExists invalid")
        if self.file_format not in RECORDING_FORMATS:
            raise RecordingError(422, "specified format is unknown on this system")
        if not self.name:
            raise RecordingError(400, "Error parsing request")

    def terminates(self, digit: str) -> bool:
        """Whether `digit` ends the recording."""
        return self.terminate_on == "any" or self.terminate_on == digit


@dataclass(slots=True)
class StoredFile:
    """A stored recording: its format and how many seconds of audio it holds."""

    name: str
    file_format: str
    seconds: float

    def to_json(self) -> JsonDict:
        """The ARI `StoredRecording` model."""
        return {"format": self.file_format, "name": self.name}

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(self.file_format, "application/octet-stream")

    def data(self) -> bytes:
        """The file's bytes: a WAV of silence, or raw silence for headerless formats."""
        if self.file_format in ("wav", "wav16"):
            return wav_bytes(self.seconds)
        return bytes(round(self.seconds * RECORDING_FORMATS[self.file_format]))


@dataclass(eq=False)
class SimRecording:
    """A live recording of one channel."""

    options: RecordOptions
    channel: SimChannel
    state: RecordingState = "queued"
    started: float = 0.0  # clock.monotonic() at RecordingStarted
    keys: int = 0  # keys pressed while recording (not the terminator)
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    duration: int | None = None
    talking: int | None = None
    silence: int | None = None

    @property
    def name(self) -> str:
        return self.options.name

    def to_json(self) -> JsonDict:
        """The ARI `LiveRecording` model (durations only once finished)."""
        body: JsonDict = {
            "format": self.options.file_format,
            "name": self.name,
            "state": self.state,
            "target_uri": f"channel:{self.channel.id}",
        }
        if self.duration is not None:
            body["duration"] = self.duration
            if self.talking is not None and self.silence is not None:
                body["talking_duration"] = self.talking
                body["silence_duration"] = self.silence
        return body

    def cancel_timers(self) -> None:
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()


@dataclass(frozen=True, slots=True)
class Speech:
    """When the far end of a channel talks (clock.monotonic() seconds)."""

    start: float
    end: float

    def overlap(self, start: float, end: float) -> float:
        return max(0.0, min(end, self.end) - max(start, self.start))


class RecordingDesk:
    """The live and stored recordings of one simulated Asterisk."""

    def __init__(self, pbx: SimPbx) -> None:
        self._pbx = pbx
        self.live: dict[str, SimRecording] = {}
        self.stored: dict[str, StoredFile] = {}
        self._speech: dict[str, Speech] = {}
        self._waiting: dict[str, list[SimRecording]] = {}  # channel id -> after its playback

    # ------------------------------------------------------------------ stored
    def stored_seconds(self, name: str) -> float | None:
        """A stored recording's length (what `recording:<name>` plays), None if absent."""
        found = self.stored.get(name)
        return None if found is None else found.seconds

    def get_stored(self, name: str) -> StoredFile:
        found = self.stored.get(name)
        if found is None:
            raise RecordingError(404, "Recording not found")
        return found

    def delete_stored(self, name: str) -> None:
        self.get_stored(name)
        del self.stored[name]

    def copy_stored(self, name: str, destination: str) -> StoredFile:
        source = self.get_stored(name)
        if not destination:
            raise RecordingError(400, "Destination recording name must be specified")
        if destination in self.stored:
            raise RecordingError(409, "A recording with the same name already exists on the system")
        copy = StoredFile(destination, source.file_format, source.seconds)
        self.stored[destination] = copy
        return copy

    def add_stored(self, name: str, seconds: float, file_format: str = "wav") -> StoredFile:
        """Put a recording on the simulated Asterisk's disk (e.g. a message left earlier)."""
        stored = StoredFile(name, file_format, seconds)
        self.stored[name] = stored
        return stored

    # -------------------------------------------------------------------- live
    def get_live(self, name: str) -> SimRecording:
        found = self.live.get(name)
        if found is None:
            raise RecordingError(404, "Recording not found")
        return found

    def record(self, chan: SimChannel, options: RecordOptions) -> SimRecording:
        """Start recording `chan` (already checked to be in Stasis)."""
        options.check()
        exists = "Recording '%s' already exists and can not be overwritten"
        if options.name in self.live:
            raise RecordingError(409, exists % options.name)
        if options.name in self.stored and options.if_exists == "fail":
            raise RecordingError(409, exists % options.name)
        recording = SimRecording(options, chan)
        self.live[options.name] = recording
        if self._pbx.is_playing(f"channel:{chan.id}"):
            # The channel's Stasis thread runs one command at a time: after the prompt.
            self._waiting.setdefault(chan.id, []).append(recording)
        else:
            self._begin(recording)
        return recording

    def _begin(self, recording: SimRecording) -> None:
        delay = RECORDING_START_DELAY
        if recording.options.beep:
            delay += self._pbx.media_seconds("sound:beep") or 0.0
        self._after(recording, delay, lambda: self._start(recording))

    def media_idle(self, target_uri: str) -> None:
        """The channel's playbacks are over: recordings asked for meanwhile start now."""
        kind, _, channel_id = target_uri.partition(":")
        if kind != "channel":
            return
        for recording in self._waiting.pop(channel_id, []):
            if recording.state == "queued":
                self._begin(recording)

    def _after(self, recording: SimRecording, delay: float, action: Callable[[], None]) -> None:
        def fire() -> None:
            if recording.state not in ("queued", "recording"):
                return
            try:
                action()
            except Exception:  # a simulator bug must not kill the event loop's timer
                log.exception("simulator recording %s failed", recording.name)

        recording.timers.append(self._pbx.clock.call_later(max(0.0, delay), fire))

    def _publish(self, event_type: str, recording: SimRecording) -> None:
        self._pbx.publish_channel_event(
            recording.channel, event_type, recording=recording.to_json()
        )

    def _start(self, recording: SimRecording) -> None:
        chan = recording.channel
        now = self._pbx.clock.monotonic()
        recording.state = "recording"
        recording.started = now
        self._publish("RecordingStarted", recording)
        script = chan.script
        if chan.id not in self._speech and script is not None and script.talk is not None:
            self._speech[chan.id] = Speech(now, now + script.talk)
            if script.hangup_after_talk:
                self._pbx.later(
                    chan, script.talk + HANGUP_AFTER_TALK, lambda: self._pbx.remote_hangup(chan)
                )
        options = recording.options
        if options.max_duration > 0:
            end = now + options.max_duration
            self._after(recording, options.max_duration, lambda: self._finish(recording, end))
        if options.max_silence > 0:
            speech = self._speech.get(chan.id)
            quiet_from = now if speech is None or speech.end <= now else speech.end
            if speech is not None and speech.start > now:
                quiet_from = now
            kept = min(SILENCE_KEPT_SECONDS, float(options.max_silence))
            self._after(
                recording,
                quiet_from + options.max_silence - now,
                lambda: self._finish(recording, quiet_from + kept),
            )

    def key_pressed(self, chan: SimChannel, digit: str) -> None:
        """A key reached the channel (after its ChannelDtmfReceived)."""
        for recording in list(self.live.values()):
            if recording.channel is not chan or recording.state != "recording":
                continue
            if recording.options.terminates(digit):
                end = self._pbx.clock.monotonic()
                self._after(recording, RECORDING_KEY_DELAY, partial(self._finish, recording, end))
            else:
                recording.keys += 1

    def channel_gone(self, chan: SimChannel) -> None:
        """The channel hangs up: its recordings finish `done` and the files are kept."""
        now = self._pbx.clock.monotonic()
        for recording in list(self.live.values()):
            if recording.channel is chan:
                if recording.state == "recording":
                    self._finish(recording, now)
                else:
                    self._drop(recording, "failed")
        self._speech.pop(chan.id, None)
        self._waiting.pop(chan.id, None)

    def stop(self, name: str) -> None:
        """POST /recordings/live/{name}/stop: finish now, keep the file."""
        recording = self.get_live(name)
        if recording.state == "recording":
            self._finish(recording, self._pbx.clock.monotonic())
        else:
            self._drop(recording, "canceled")

    def cancel(self, name: str) -> None:
        """DELETE /recordings/live/{name}: finish now and discard the file."""
        self._drop(self.get_live(name), "canceled")

    def _drop(self, recording: SimRecording, state: RecordingState) -> None:
        recording.cancel_timers()
        was_recording = recording.state == "recording"
        recording.state = state
        self.live.pop(recording.name, None)
        if was_recording:
            self._publish("RecordingFinished", recording)

    def _finish(self, recording: SimRecording, audio_end: float) -> None:
        """End a recording whose audio stops at `audio_end` (clock.monotonic())."""
        if recording.state != "recording":
            return
        recording.cancel_timers()
        options = recording.options
        elapsed = max(0.0, audio_end - recording.started)
        written = max(0.0, elapsed - recording.keys * DTMF_AUDIO_SECONDS)
        recording.duration = int(written)
        if options.max_silence > 0:
            speech = self._speech.get(recording.channel.id)
            talked = 0.0 if speech is None else speech.overlap(recording.started, audio_end)
            recording.talking = min(recording.duration, int(min(talked, written)))
            recording.silence = recording.duration - recording.talking
        recording.state = "done"
        self.live.pop(recording.name, None)
        previous = self.stored.get(options.name)
        if previous is not None and options.if_exists == "append":
            written += previous.seconds
        self.stored[options.name] = StoredFile(options.name, options.file_format, written)
        self._publish("RecordingFinished", recording)

    def shutdown(self) -> None:
        for recording in self.live.values():
            recording.cancel_timers()
