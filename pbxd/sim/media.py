"""What the simulated Asterisk plays: its sounds, how long each medium lasts, and what a caller
heard (early media or answered).

Asterisk 22 as the media captures show it (captures/media, README "Media"):
- `sound:NAME` plays the file's length; a missing file fails at once (PlaybackStarted and
  PlaybackFinished `failed` in the same millisecond).
- `tone:` plays until stopped; a named indication the system does not define (`tone:beep`
  in the lab, which has no indications.conf) fails at once.
- a media URI with an unknown scheme is accepted (201, PlaybackStarted) and never finishes: no
  PlaybackFinished, and the playback is gone (GET -> 404).
- `recording:NAME` plays a stored recording, missing ones fail.

`SoundLibrary` is the simulator's sounds folder: the lab's prompts by default, sounds added by
name and length, or a real sounds folder scanned (`.wav` headers, `.sln`/`.ulaw`/... sizes) for
a dry run of a real configuration.
"""

from __future__ import annotations

import logging
import struct
import wave
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

log = logging.getLogger(__name__)

# The lab's prompts (acceptance/make_lab_sounds.py), read off the media traces, and Asterisk's
# core `beep` (0.42 s on the lab machine that had the sound packages: offline_then_mobile).
LAB_SOUNDS: dict[str, float] = {
    "pbxd-prompt-menu": 5.0,
    "pbxd-prompt-welcome": 2.0,
    "pbxd-prompt-screen": 4.0,
    "pbxd-beep": 0.3,
    "beep": 0.42,
}
# A few of Asterisk's core sounds (en) a production system has and pbxd may play; their
# lengths are approximate (beep: measured on the lab machine that had the sound packages).
CORE_SOUNDS: dict[str, float] = {
    "vm-intro": 5.0,
    "vm-goodbye": 1.0,
    "all-circuits-busy-now": 2.5,
}
# What a prompt the configuration names lasts in a dry run when no sounds folder has it.
DEFAULT_PROMPT_SECONDS = 3.0
# indications.conf.sample's tones: what `tone:<name>` can play on a stock Asterisk.
STOCK_INDICATIONS = frozenset(
    {"dial", "busy", "ring", "congestion", "callwaiting", "dialrecall", "record", "info"}
    | {"stutter"}
)
# Schemes Asterisk's res_stasis_playback knows; any other is accepted and never plays.
KNOWN_SCHEMES = frozenset({"sound", "recording", "number", "digits", "characters", "tone"})
# Spoken numbers, digits and characters: about half a second a character.
SECONDS_PER_SPOKEN_CHAR = 0.5
# Raw audio formats Asterisk reads from a sounds folder, in bytes per second of audio.
RAW_BYTES_PER_SECOND: dict[str, int] = {
    ".sln": 16000,
    ".slin": 16000,
    ".sln16": 32000,
    ".ulaw": 8000,
    ".alaw": 8000,
    ".g722": 8000,
    ".gsm": 1650,  # 33-byte frames of 20 ms
}
SOUND_SUFFIXES = frozenset({".wav", ".wav16", *RAW_BYTES_PER_SECOND})
WAV_HEADER_BYTES = 44
SAMPLE_RATE = 8000


class Outcome(Enum):
    """How a medium ends when nobody stops it."""

    PLAYS = "plays"  # for `seconds`, then the next medium or PlaybackFinished done
    FAILS = "fails"  # PlaybackFinished failed at once
    FOREVER = "forever"  # until stopped (tones)
    VANISHES = "vanishes"  # unknown scheme: started, then gone without a PlaybackFinished


@dataclass(frozen=True, slots=True)
class MediaLength:
    """How one media URI plays."""

    outcome: Outcome
    seconds: float = 0.0


@dataclass(slots=True)
class Heard:
    """One medium a channel's far end heard: `early` when the channel was not answered (the
    caller got 183 Session Progress with SDP, and nobody was billed)."""

    media_uri: str
    early: bool
    started: float  # clock.monotonic()
    seconds: float = 0.0
    complete: bool = False


def wav_seconds(path: Path) -> float:
    """The length of a WAV file from its header (ValueError if it is not a readable WAV)."""
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes() / float(wav.getframerate())
    except (wave.Error, EOFError, OSError) as exc:
        raise ValueError(f"{path}: not a readable WAV file ({exc})") from None


def sound_file_seconds(path: Path) -> float:
    """The length of a sound file Asterisk can play (`.wav` header, raw formats by size)."""
    suffix = path.suffix.lower()
    if suffix in (".wav", ".wav16"):
        return wav_seconds(path)
    rate = RAW_BYTES_PER_SECOND.get(suffix)
    if rate is None:
        raise ValueError(f"{path}: not a sound format the simulator knows")
    return path.stat().st_size / rate


def wav_bytes(seconds: float, *, tone_hz: float = 0.0) -> bytes:
    """A mono 8 kHz 16-bit WAV of `seconds` (44-byte header + 16000 bytes a second, as
    Asterisk's stored recordings): silence, or a square tone of `tone_hz`."""
    frames = max(0, round(seconds * SAMPLE_RATE))
    if tone_hz > 0:
        period = max(2, round(SAMPLE_RATE / tone_hz))
        high, low = struct.pack("<h", 8000), struct.pack("<h", -8000)
        cycle = high * (period // 2) + low * (period - period // 2)
        data = (cycle * (frames // period + 1))[: frames * 2]
    else:
        data = bytes(frames * 2)
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(data),
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        1,  # mono
        SAMPLE_RATE,
        SAMPLE_RATE * 2,
        2,
        16,
        b"data",
        len(data),
    )
    return header + data


class SoundLibrary:
    """The sounds the simulated Asterisk has, by name (`sound:<name>`), with their lengths."""

    def __init__(self, sounds: dict[str, float] | None = None) -> None:
        self._sounds: dict[str, float] = (
            {**CORE_SOUNDS, **LAB_SOUNDS} if sounds is None else dict(sounds)
        )
        self.indications: frozenset[str] = STOCK_INDICATIONS

    def add(self, name: str, seconds: float) -> None:
        """A sound `name` (as in `sound:<name>`, e.g. "custom/acme-welcome") lasting `seconds`."""
        if seconds < 0:
            raise ValueError(f"sound {name!r}: length must be >= 0, got {seconds}")
        self._sounds[name.removeprefix("sound:")] = float(seconds)

    def remove(self, name: str) -> None:
        """Forget a sound: playing it then fails, as a missing file does."""
        self._sounds.pop(name.removeprefix("sound:"), None)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.removeprefix("sound:") in self._sounds

    @property
    def names(self) -> list[str]:
        return sorted(self._sounds)

    def seconds(self, name: str) -> float | None:
        """A sound's length, None when the simulated Asterisk does not have it."""
        return self._sounds.get(name.removeprefix("sound:"))

    def scan(self, folder: Path, *, prefix: str = "") -> list[str]:
        """Add every sound file under `folder` (names relative to it, without suffix, with
        `prefix/` before them as Asterisk's `sound:custom/x` names a file of sounds/custom);
        returns the names added. An unreadable file is logged and skipped."""
        added: list[str] = []
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.suffix.lower() not in SOUND_SUFFIXES:
                continue
            relative = path.relative_to(folder).with_suffix("").as_posix()
            name = f"{prefix.strip('/')}/{relative}" if prefix else relative
            try:
                self.add(name, sound_file_seconds(path))
            except (ValueError, OSError) as exc:
                log.warning("sound file skipped: %s", exc)
                continue
            added.append(name)
        return added

    def length(self, media_uri: str, recording_seconds: float | None = None) -> MediaLength:
        """How `media_uri` plays; `recording_seconds` is the stored recording's length when
        the URI is `recording:<name>` (None: no such recording)."""
        scheme, _, rest = media_uri.partition(":")
        if scheme not in KNOWN_SCHEMES:
            return MediaLength(Outcome.VANISHES)
        if scheme == "sound":
            seconds = self.seconds(rest)
            return (
                MediaLength(Outcome.FAILS)
                if seconds is None
                else MediaLength(Outcome.PLAYS, seconds)
            )
        if scheme == "recording":
            if recording_seconds is None:
                return MediaLength(Outcome.FAILS)
            return MediaLength(Outcome.PLAYS, recording_seconds)
        if scheme == "tone":
            named = rest.split(";")[0].strip()
            is_tone_string = not named or not named.isalpha()
            if is_tone_string or named in self.indications:
                return MediaLength(Outcome.FOREVER)
            return MediaLength(Outcome.FAILS)
        return MediaLength(Outcome.PLAYS, max(1, len(rest)) * SECONDS_PER_SPOKEN_CHAR)
