"""How the far end of a simulated call behaves (the SIP phone or carrier behind a channel)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PeerScript:
    """What a dialled destination does, in virtual seconds from the moment it is dialled.

    - `online=False`: unreachable; `channels/create` answers 500 Allocation failed.
    - `answer_after`: answers (200 OK) after N s; None rings forever.
    - `busy_after`: rejects with 486 Busy Here after N s (cause 17), without ringing first,
      as the phone in busy.jsonl did. If both are set, the earlier one wins.
    - `hangup_after`: hangs up (BYE, cause 16) N s after answering.
    - `dtmf`: digits sent (one ChannelDtmfReceived each) `dtmf_after` s after answering.
    - `keys`: more presses, `(seconds after answering, digits)` each (SIP INFO, 160 ms).
    - `talk`: seconds of speech from the start of the first recording of the channel (a
      caller leaving a message), then silence; `hangup_after_talk`: then hang up.
    - `progress_after`: a carrier's 183 Session Progress with SDP after N s (early media:
      ringback or an announcement), heard by whoever shares a bridge with the channel.
    - `reject_after` with `reject_cause`: the carrier refuses the call with a final response
      after N s (404 Not Found: cause 1; 503: cause 34), without answering.
    - `voicemail_after`: a mobile whose own voicemail answers after N s (unless the person
      answers first): it plays nothing pbxd hears, never presses a key, and hangs up after
      VOICEMAIL_SECONDS of recording.
    """

    online: bool = True
    answer_after: float | None = None
    busy_after: float | None = None
    hangup_after: float | None = None
    dtmf: str = ""
    dtmf_after: float = 0.5
    keys: tuple[tuple[float, str], ...] = ()
    talk: float | None = None
    hangup_after_talk: bool = False
    progress_after: float | None = None
    reject_after: float | None = None
    reject_cause: int = 1
    voicemail_after: float | None = None

    def __post_init__(self) -> None:
        for name in (
            "voicemail_after",
            "answer_after",
            "busy_after",
            "hangup_after",
            "progress_after",
            "reject_after",
        ):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"PeerScript.{name} must be >= 0, got {value}")
        if self.dtmf_after < 0:
            raise ValueError(f"PeerScript.dtmf_after must be >= 0, got {self.dtmf_after}")
        bad = [d for d in self.dtmf if d not in DTMF_DIGITS]
        if bad:
            raise ValueError(f"PeerScript.dtmf has invalid digits: {''.join(bad)!r}")
        for at, digits in self.keys:
            if at < 0 or not digits or any(d not in DTMF_DIGITS for d in digits):
                raise ValueError(f"PeerScript.keys: bad press {digits!r} at {at}")
        if self.talk is not None and self.talk < 0:
            raise ValueError(f"PeerScript.talk must be >= 0, got {self.talk}")

    def as_dialled(self) -> PeerScript:
        """What actually happens when dialled: the voicemail's script if it answers first."""
        voicemail = self.voicemail_after
        if voicemail is None or (self.answer_after is not None and self.answer_after <= voicemail):
            return self
        return PeerScript(answer_after=voicemail, hangup_after=VOICEMAIL_SECONDS)

    @property
    def presses(self) -> tuple[tuple[float, str], ...]:
        """Every key press after answering, `dtmf` included, in time order."""
        presses = list(self.keys)
        if self.dtmf:
            presses.append((self.dtmf_after, self.dtmf))
        return tuple(sorted(presses, key=lambda press: press[0]))


DTMF_DIGITS = frozenset("0123456789*#ABCD")
# A mobile voicemail records this long, then hangs up (operators' boxes: 1 to 3 minutes).
VOICEMAIL_SECONDS = 120.0

# Spacing between two scripted DTMF digits, and each digit's reported length (SIP INFO in
# callee_hangup_dtmf.jsonl reports 160 ms).
DTMF_INTERVAL = 0.25
DTMF_DURATION_MS = 160


@dataclass(frozen=True, slots=True)
class DialTarget:
    """A parsed PJSIP dial string: `alice`, `+336...@trunk-out` or `trunk-out/sip:...`."""

    technology: str
    endpoint: str
    user: str | None
    dialstring: str

    @classmethod
    def parse(cls, endpoint: str) -> DialTarget | None:
        """`PJSIP/<resource>` -> target; None when there is no tech or no resource."""
        tech, sep, resource = endpoint.partition("/")
        if not tech or not sep or not resource:
            return None
        user: str | None = None
        name = resource
        if "/" in resource:  # PJSIP/<endpoint>/<uri>: the number is the URI's user part
            name, uri = resource.split("/", 1)
            match = re.match(r"sips?:([^@;]+)@", uri)
            user = match.group(1) if match else None
        elif "@" in resource:  # PJSIP/<user>@<endpoint>
            user, name = resource.rsplit("@", 1)
        return cls(technology=tech, endpoint=name, user=user, dialstring=resource)


class ScriptBook:
    """Scripts by destination: a full dial string, a bare number (the dial string's user
    part), or an endpoint (`PJSIP/alice`, or `PJSIP/trunk-out` for all its numbers)."""

    def __init__(self) -> None:
        self._scripts: dict[str, PeerScript] = {}
        self.default = PeerScript()

    def set(self, destination: str, script: PeerScript) -> None:
        self._scripts[destination] = script

    def lookup(self, target: DialTarget) -> PeerScript:
        """The most specific script for a target, else the default (ring forever)."""
        candidates = [f"{target.technology}/{target.dialstring}"]
        if target.user is not None:
            candidates.append(target.user)
        # Then the endpoint itself: `PJSIP/trunk-out` scripts every number dialled through it.
        candidates.append(f"{target.technology}/{target.endpoint}")
        for key in candidates:
            if key in self._scripts:
                return self._scripts[key]
        return self.default
