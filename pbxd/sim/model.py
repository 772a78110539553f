"""The simulator's state: endpoints, channels, bridges and playbacks, as Asterisk 22 has them.

Each class renders itself exactly as ARI does (`to_json`), so REST bodies and event payloads
validate against the api-docs models (`Channel`, `Bridge`, `Endpoint`, `Playback`).
Cause tables mirror Asterisk's `main/channel.c`, `res/ari/resource_channels.c` and
`channels/chan_pjsip.c`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from .media import Heard
from .peers import PeerScript

JsonDict = dict[str, Any]

# Channel states as ARI spells them (api-docs Channel.state allowableValues).
ChannelState = Literal[
    "Down",
    "Rsrved",
    "OffHook",
    "Dialing",
    "Ring",
    "Ringing",
    "Up",
    "Busy",
    "Dialing Offhook",
    "Pre-ring",
    "Unknown",
]

Direction = Literal["inbound", "outbound"]

# Q.850 causes, with Asterisk's ast_cause2str() texts.
CAUSE_NORMAL_CLEARING = 16
CAUSE_USER_BUSY = 17
CAUSE_NO_ANSWER = 19
CAUSE_CALL_REJECTED = 21
CAUSE_ANSWERED_ELSEWHERE = 26
CAUSE_CONGESTION = 34
CAUSE_INTERWORKING = 127

CAUSE_TEXTS: dict[int, str] = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    2: "No route to specified transmit network",
    3: "No route to destination",
    5: "Misdialed trunk prefix",
    6: "Channel unacceptable",
    7: "Call awarded and being delivered in an established channel",
    8: "Pre-empted",
    14: "Number ported elsewhere",
    16: "Normal Clearing",
    17: "User busy",
    18: "No user responding",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    21: "Call Rejected",
    22: "Number changed",
    23: "Redirected to new destination",
    26: "Answered elsewhere",
    27: "Destination out of order",
    28: "Invalid number format",
    29: "Facility rejected",
    30: "Response to STATus ENQuiry",
    31: "Normal, unspecified",
    34: "Circuit/channel congestion",
    38: "Network out of order",
    41: "Temporary failure",
    42: "Switching equipment congestion",
    43: "Access information discarded",
    44: "Requested channel not available",
    50: "Facility not subscribed",
    52: "Outgoing call barred",
    54: "Incoming call barred",
    57: "Bearer capability not authorized",
    58: "Bearer capability not available",
    65: "Bearer capability not implemented",
    66: "Channel not implemented",
    69: "Facility not implemented",
    81: "Invalid call reference value",
    88: "Incompatible destination",
    95: "Invalid message unspecified",
    96: "Mandatory information element is missing",
    97: "Message type nonexist.",
    98: "Wrong message",
    99: "Info. element nonexist or not implemented",
    100: "Invalid information element contents",
    101: "Message not compatible with call state",
    102: "Recover on timer expiry",
    103: "Mandatory IE length error",
    111: "Protocol error, unspecified",
    127: "Interworking, unspecified",
}

# DELETE /channels/{id}?reason=... (resource_channels.c convert_reason_to_hangup_code).
HANGUP_REASONS: dict[str, int] = {
    "normal": 16,
    "busy": 17,
    "congestion": 34,
    "no_answer": 19,
    "timeout": 18,
    "rejected": 21,
    "unallocated": 1,
    "normal_unspecified": 31,
    "number_incomplete": 28,
    "codec_mismatch": 58,
    "interworking": 127,
    "failure": 38,  # AST_CAUSE_FAILURE is AST_CAUSE_NETWORK_OUT_OF_ORDER
    "answered_elsewhere": 26,
}

# chan_pjsip hangup_cause2sip(): the SIP final response an unanswered INVITE gets; it becomes
# the channel's tech_cause (busy.jsonl: reason=busy -> 486, noanswer.jsonl: 19 -> 480).
_CAUSE_TO_SIP: dict[int, int] = {
    1: 404,
    2: 404,
    3: 404,
    17: 486,
    18: 408,
    19: 480,
    20: 480,
    21: 403,
    22: 410,
    27: 502,
    28: 484,
    29: 501,
    31: 480,
    34: 503,
    38: 500,
    42: 503,
    58: 488,
    66: 503,
    127: 500,
}

# Soft-hangup flags Asterisk reports as `cause` in ChannelHangupRequest.
SOFTHANGUP_EXPLICIT = 32  # ast_softhangup(AST_SOFTHANGUP_EXPLICIT): DELETE /channels, dial timeout
SOFTHANGUP_APPUNLOAD = 16  # the Stasis() dialplan app returning on an inbound channel

SIP_TRYING = 100
SIP_RINGING = 180
SIP_SESSION_PROGRESS = 183  # with SDP: early media
SIP_OK = 200
SIP_BUSY_HERE = 486
SIP_REQUEST_TERMINATED = 487  # what the caller's CANCEL leaves as tech_cause
SIP_DECLINE = 603


# Caller presentation (callerid.h) and ast_describe_caller_presentation()'s text; endpoints
# present their caller ID allowed and not screened unless configured otherwise.
PRES_ALLOWED_NOT_SCREENED = 0
PRESENTATION_TEXTS: dict[int, str] = {
    0: "Presentation Allowed, Not Screened",
    1: "Presentation Allowed, Passed Screen",
    2: "Presentation Allowed, Failed Screen",
    3: "Presentation Allowed, Network Number",
    32: "Presentation Restricted, Not Screened",
    33: "Presentation Restricted, Passed Screen",
    34: "Presentation Restricted, Failed Screen",
    35: "Presentation Restricted, Network Number",
    67: "Number Unavailable",
}


# ast_named_caller_presentation(): what CALLERID(pres) reads; ast_parse_caller_presentation()
# takes the same names (any case) for CALLERID(pres)= and CONNECTEDLINE(pres)=.
PRESENTATION_NAMES: dict[int, str] = {
    0: "allowed_not_screened",
    1: "allowed_passed_screen",
    2: "allowed_failed_screen",
    3: "allowed",
    32: "prohib_not_screened",
    33: "prohib_passed_screen",
    34: "prohib_failed_screen",
    35: "prohib",
    67: "unavailable",
}
PRES_PROHIB_NOT_SCREENED = 32
PRES_NUMBER_NOT_AVAILABLE = 67


def presentation_text(presentation: int) -> str:
    """Asterisk's ast_describe_caller_presentation()."""
    return PRESENTATION_TEXTS.get(presentation, "Unknown")


def presentation_name(presentation: int) -> str:
    """Asterisk's ast_named_caller_presentation()."""
    return PRESENTATION_NAMES.get(presentation, "unknown")


def parse_presentation(value: str) -> int | None:
    """How func_callerid.c reads a `pres` write: a leading digit -> atoi, else a name."""
    text = value.strip()
    if text[:1].isdigit():
        digits = text[: len(text) - len(text.lstrip("0123456789"))]
        return int(digits)
    for code, name in PRESENTATION_NAMES.items():
        if name == text.lower():
            return code
    return None  # Asterisk logs "Unknown combined presentation" and leaves it unchanged


def cause_text(cause: int) -> str:
    """Asterisk's ast_cause2str()."""
    return CAUSE_TEXTS.get(cause, "Unknown")


def cause_to_sip(cause: int) -> int | None:
    """chan_pjsip's hangup_cause2sip(), None where it answers 0."""
    return _CAUSE_TO_SIP.get(cause)


def ari_time(moment: datetime) -> str:
    """A datetime as ARI prints it: `2026-11-23T19:02:21.212+0000` (UTC, milliseconds)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


@dataclass
class CallerId:
    """A caller or connected-line party.

    `presentation` is the combined name/number presentation (AST_PRES_*). It is not in
    ARI's CallerID model, and Asterisk's snapshot comparisons behind ChannelCallerId /
    ChannelConnectedLine look at name and number only: so it takes no part in equality.
    """

    name: str = ""
    number: str = ""
    presentation: int = field(default=PRES_ALLOWED_NOT_SCREENED, compare=False)

    def to_json(self) -> JsonDict:
        return {"name": self.name, "number": self.number}

    def copy(self) -> CallerId:
        return CallerId(self.name, self.number, self.presentation)

    @property
    def combined_presentation(self) -> int:
        """ast_party_id_presentation(): a party with neither name nor number is unavailable."""
        if not self.name and not self.number:
            return PRES_NUMBER_NOT_AVAILABLE
        return self.presentation


@dataclass(eq=False)
class SimEndpoint:
    """A configured PJSIP endpoint: a softphone or a carrier trunk."""

    technology: str
    resource: str
    online: bool = True
    caller: CallerId = field(default_factory=CallerId)
    context: str = "from-internal"
    # The audio codec its calls use: two legs bridge natively (native_rtp) only when equal.
    codec: str = "ulaw"

    @property
    def key(self) -> str:
        return f"{self.technology}/{self.resource}"

    def to_json(self, channel_ids: list[str]) -> JsonDict:
        return {
            "channel_ids": channel_ids,
            "resource": self.resource,
            "state": "online" if self.online else "offline",
            "technology": self.technology,
        }


@dataclass(eq=False)
class SimChannel:
    """One call leg, as Asterisk's channel snapshot plus what the simulator needs to drive it."""

    id: str
    name: str
    protocol_id: str
    endpoint: SimEndpoint
    direction: Direction
    creationtime: datetime
    state: ChannelState
    caller: CallerId
    connected: CallerId = field(default_factory=CallerId)
    context: str = "from-internal"
    exten: str = "s"
    priority: int = 1
    app_name: str = ""
    app_data: str = ""
    language: str = "en"
    accountcode: str = ""
    # Apps subscribed to this channel's events (insertion-ordered).
    apps: dict[str, None] = field(default_factory=dict)
    # The Stasis app currently controlling the channel; None before StasisStart / after StasisEnd.
    stasis_app: str | None = None
    # Entered Stasis from the dialplan (inbound): Stasis() returning adds a 2nd HangupRequest.
    via_dialplan: bool = False
    # Back in the dialplan after `continue`: the PBX ending the call adds that HangupRequest too.
    in_dialplan: bool = False
    # What `dial` sends: set only on channels made by channels/create ("Dialing a channel not
    # created by ARI" otherwise).
    dialstring: str | None = None
    dialed: bool = False
    answered: bool = False
    tech_cause: int | None = None
    bridge_id: str | None = None
    inhibit_colp: bool = False
    variables: dict[str, str] = field(default_factory=dict)
    # Connected line a bridge queued while the leg was not up yet; applied when it answers.
    pending_connected: CallerId | None = None
    # Who the callee's phone is told is calling: chan_pjsip builds the INVITE's From/PAI from
    # the connected line (res_pjsip_caller_id), not from `caller`. Set when the INVITE goes out.
    presented: CallerId | None = None
    # The far end's behaviour (callee phone, or the caller's DTMF for an inbound call).
    script: PeerScript | None = None
    # POST /channels: enters Stasis only once answered.
    originated: bool = False
    # The app watches the channel only while it is in Stasis (a lone inbound call, a snoop):
    # after StasisEnd nothing more reaches it (no ChannelDestroyed), unless the channel became
    # the originator of a leg the app created (then it stays subscribed to the end).
    stasis_only: bool = False
    # What the far end of an inbound call got: 100 Trying, 180, 183 Session Progress (early
    # media: a play, `progress`, and any `ring` after them), 200, and the final answer.
    sip_responses: list[int] = field(default_factory=list)
    # Every medium played to the channel, with how long it was heard and whether before answer.
    heard: list[Heard] = field(default_factory=list)
    # Snoop channels spying on / whispering to this one (they end with it).
    snoops: list[SimChannel] = field(default_factory=list)
    destroyed: bool = False
    hangup_cause: int | None = None  # the Q.850 cause it ended with (sent or not)
    hanging_up: bool = False
    timers: list[asyncio.TimerHandle] = field(default_factory=list)
    # The dialing's own timers (ringing, answer, busy, dial timeout): void once answered.
    dial_timers: list[asyncio.TimerHandle] = field(default_factory=list)

    def to_json(self) -> JsonDict:
        """The ARI `Channel` model."""
        return {
            "accountcode": self.accountcode,
            "caller": self.caller.to_json(),
            "connected": self.connected.to_json(),
            "creationtime": ari_time(self.creationtime),
            "dialplan": {
                "app_data": self.app_data,
                "app_name": self.app_name,
                "context": self.context,
                "exten": self.exten,
                "priority": self.priority,
            },
            "id": self.id,
            "language": self.language,
            "name": self.name,
            "protocol_id": self.protocol_id,
            "state": self.state,
        }

    @property
    def early_media(self) -> bool:
        """The caller got 183 Session Progress (a prompt or progress before any answer)."""
        return 183 in self.sip_responses

    def cancel_timers(self) -> None:
        for handle in (*self.timers, *self.dial_timers):
            handle.cancel()
        self.timers.clear()
        self.dial_timers.clear()

    def cancel_dial_timers(self) -> None:
        for handle in self.dial_timers:
            handle.cancel()
        self.dial_timers.clear()


# Bridge `type` flags accepted by stasis_app_bridge_create().
BRIDGE_TYPE_FLAGS = frozenset(
    {"mixing", "holding", "dtmf_events", "proxy_media", "video_sfu", "video_single", "sdp_label"}
)


@dataclass(eq=False)
class SimBridge:
    """A Stasis bridge (POST /bridges)."""

    id: str
    name: str
    flags: frozenset[str]
    creationtime: datetime
    channels: list[str] = field(default_factory=list)
    # Apps that saw one of their channels enter: they get BridgeDestroyed.
    apps: dict[str, None] = field(default_factory=dict)
    technology: str = "simple_bridge"
    # False for dtmf_events/proxy_media bridges: the media must stay in Asterisk's core.
    native_capable: bool = True
    video_mode: str = "talker"

    def __post_init__(self) -> None:
        if self.holding:
            self.technology = "holding_bridge"

    @property
    def holding(self) -> bool:
        return "holding" in self.flags

    @property
    def bridge_type(self) -> str:
        return "holding" if self.holding else "mixing"

    @property
    def dtmf_events(self) -> bool:
        return "dtmf_events" in self.flags

    def to_json(self) -> JsonDict:
        """The ARI `Bridge` model."""
        return {
            "bridge_class": "stasis",
            "bridge_type": self.bridge_type,
            "channels": list(self.channels),
            "creationtime": ari_time(self.creationtime),
            "creator": "Stasis",
            "id": self.id,
            "name": self.name,
            "technology": self.technology,
            "video_mode": self.video_mode,
        }


PlaybackState = Literal["queued", "playing", "continuing", "done", "failed"]


@dataclass(eq=False)
class SimPlayback:
    """Media played to a channel or a bridge."""

    id: str
    media: list[str]
    target_uri: str
    language: str
    state: PlaybackState = "queued"
    index: int = 0
    timer: asyncio.TimerHandle | None = None
    # What the target channel is hearing now (closed when the medium ends).
    heard: Heard | None = None

    def to_json(self) -> JsonDict:
        """The ARI `Playback` model."""
        body: JsonDict = {
            "id": self.id,
            "language": self.language,
            "media_uri": self.media[min(self.index, len(self.media) - 1)],
            "state": self.state,
            "target_uri": self.target_uri,
        }
        if self.index + 1 < len(self.media):
            body["next_media_uri"] = self.media[self.index + 1]
        return body
