"""ARI WebSocket events as typed objects: parsed once at the edge, on every event of every call.

`parse_event(dict)` returns one of the dataclasses below, `UnknownEvent` for types pbxd does
not use, and raises `AriEventError` for input that is not an ARI event. Plain slotted
dataclasses and direct field reads keep it cheap (no validation framework on the hot path).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

from pbxd.ari._json import (
    JsonObject,
    opt_bool,
    opt_int,
    opt_object,
    opt_str,
    req_date,
    req_int,
    req_object,
    req_str,
    str_or_empty,
    str_tuple,
)
from pbxd.ari.errors import AriEventError, AriParseError
from pbxd.ari.models import (
    Bridge,
    Channel,
    ContactInfo,
    DeviceState,
    Endpoint,
    LiveRecording,
    Peer,
    Playback,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _EventBase:
    """Fields every ARI event carries."""

    timestamp: datetime
    application: str
    asterisk_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _ChannelEvent(_EventBase):
    """An event about one channel."""

    channel: Channel

    def channel_ids(self) -> tuple[str, ...]:
        """The channel this event concerns."""
        return (self.channel.id,)


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisStart(_ChannelEvent):
    """A channel entered our Stasis application (inbound call, or a leg we created)."""

    type: Literal["StasisStart"] = "StasisStart"
    args: tuple[str, ...] = ()
    replace_channel: Channel | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StasisEnd(_ChannelEvent):
    """A channel left our Stasis application (hung up or sent back to the dialplan)."""

    type: Literal["StasisEnd"] = "StasisEnd"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelStateChange(_ChannelEvent):
    """A channel changed state (e.g. Ringing, Up); the new state is `channel.state`."""

    type: Literal["ChannelStateChange"] = "ChannelStateChange"


@dataclass(frozen=True, slots=True, kw_only=True)
class Dial(_EventBase):
    """Progress of a dial attempt; `dialstatus` is "" at start, then RINGING, ANSWER, BUSY, ..."""

    type: Literal["Dial"] = "Dial"
    peer: Channel
    caller: Channel | None = None
    dialstatus: str
    dialstring: str = ""
    forward: str = ""
    forwarded: Channel | None = None

    def channel_ids(self) -> tuple[str, ...]:
        """The dialled peer first, then the caller when Asterisk names one."""
        if self.caller is None:
            return (self.peer.id,)
        return (self.peer.id, self.caller.id)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelHangupRequest(_ChannelEvent):
    """A hangup was requested on a channel; `cause` is the Q.850 cause when known."""

    type: Literal["ChannelHangupRequest"] = "ChannelHangupRequest"
    cause: int | None = None
    soft: bool = False
    tech_cause: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDestroyed(_ChannelEvent):
    """A channel is gone; `cause` is the Q.850 hangup cause (16 normal, 17 busy, ...)."""

    type: Literal["ChannelDestroyed"] = "ChannelDestroyed"
    cause: int
    cause_txt: str
    tech_cause: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelEnteredBridge(_EventBase):
    """A channel joined a bridge."""

    type: Literal["ChannelEnteredBridge"] = "ChannelEnteredBridge"
    bridge: Bridge
    channel: Channel | None = None

    def channel_ids(self) -> tuple[str, ...]:
        """The channel that entered (Swagger allows it to be absent)."""
        return () if self.channel is None else (self.channel.id,)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelLeftBridge(_ChannelEvent):
    """A channel left a bridge."""

    type: Literal["ChannelLeftBridge"] = "ChannelLeftBridge"
    bridge: Bridge


@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeDestroyed(_EventBase):
    """A bridge was destroyed."""

    type: Literal["BridgeDestroyed"] = "BridgeDestroyed"
    bridge: Bridge

    def channel_ids(self) -> tuple[str, ...]:
        """The channels still in the bridge when it was destroyed (usually none)."""
        return self.bridge.channels


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDtmfReceived(_ChannelEvent):
    """A DTMF digit was received on a channel."""

    type: Literal["ChannelDtmfReceived"] = "ChannelDtmfReceived"
    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class _PlaybackEvent(_EventBase):
    """An event about a playback."""

    playback: Playback

    def channel_ids(self) -> tuple[str, ...]:
        """The channel played to; none when the playback targets a bridge."""
        channel_id = self.playback.channel_id
        return () if channel_id is None else (channel_id,)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackStarted(_PlaybackEvent):
    """A playback started."""

    type: Literal["PlaybackStarted"] = "PlaybackStarted"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackContinuing(_PlaybackEvent):
    """One medium of a multi-media playback ended and the next one (`playback.next_media_uri`)
    follows; a PlaybackStarted with the same id comes next."""

    type: Literal["PlaybackContinuing"] = "PlaybackContinuing"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlaybackFinished(_PlaybackEvent):
    """A playback finished: "done" played out or stopped by DELETE, "failed" for a missing
    file or a hangup mid-prompt."""

    type: Literal["PlaybackFinished"] = "PlaybackFinished"


@dataclass(frozen=True, slots=True, kw_only=True)
class _RecordingEvent(_EventBase):
    """An event about a live recording."""

    recording: LiveRecording

    def channel_ids(self) -> tuple[str, ...]:
        """The channel recorded; none when the recording targets a bridge."""
        channel_id = self.recording.channel_id
        return () if channel_id is None else (channel_id,)


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStarted(_RecordingEvent):
    """A recording started (it may arrive before the REST answer of `record`)."""

    type: Literal["RecordingStarted"] = "RecordingStarted"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingFinished(_RecordingEvent):
    """A recording ended (terminator key, silence, max duration, stop or the caller hanging
    up: the file is kept); `recording.duration` is whole seconds of audio written."""

    type: Literal["RecordingFinished"] = "RecordingFinished"


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingFailed(_RecordingEvent):
    """A recording could not be made (`recording.cause` says why)."""

    type: Literal["RecordingFailed"] = "RecordingFailed"


@dataclass(frozen=True, slots=True, kw_only=True)
class _EndpointEvent(_EventBase):
    """An event about an endpoint (only after an `endpoint:` subscription)."""

    endpoint: Endpoint

    def channel_ids(self) -> tuple[str, ...]:
        """Endpoint events concern no channel."""
        return ()


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointStateChange(_EndpointEvent):
    """An endpoint went online or offline; the new state is `endpoint.state`."""

    type: Literal["EndpointStateChange"] = "EndpointStateChange"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeerStatusChange(_EndpointEvent):
    """A peer's reachability changed (`peer.peer_status`: Reachable, Unreachable...)."""

    type: Literal["PeerStatusChange"] = "PeerStatusChange"
    peer: Peer


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactStatusChange(_EndpointEvent):
    """A contact of the endpoint registered, was removed or changed reachability."""

    type: Literal["ContactStatusChange"] = "ContactStatusChange"
    contact_info: ContactInfo


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceStateChanged(_EventBase):
    """A subscribed device changed state (`deviceState:` subscription)."""

    type: Literal["DeviceStateChanged"] = "DeviceStateChanged"
    device_state: DeviceState

    def channel_ids(self) -> tuple[str, ...]:
        """Device events concern no channel."""
        return ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelVarset(_EventBase):
    """A channel variable was set; `channel` is None for a global variable."""

    type: Literal["ChannelVarset"] = "ChannelVarset"
    channel: Channel | None = None
    variable: str
    value: str

    def channel_ids(self) -> tuple[str, ...]:
        """The channel whose variable was set, if any."""
        return () if self.channel is None else (self.channel.id,)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelDialplan(_ChannelEvent):
    """A channel moved in the dialplan (e.g. into the Stasis application)."""

    type: Literal["ChannelDialplan"] = "ChannelDialplan"
    dialplan_app: str
    dialplan_app_data: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelCallerId(_ChannelEvent):
    """A channel's caller ID changed; the new one is `channel.caller`."""

    type: Literal["ChannelCallerId"] = "ChannelCallerId"
    caller_presentation: int
    caller_presentation_txt: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelConnectedLine(_ChannelEvent):
    """A channel's connected line changed; the new one is `channel.connected`."""

    type: Literal["ChannelConnectedLine"] = "ChannelConnectedLine"


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(_EventBase):
    """An event type pbxd does not use; `raw` is the event as Asterisk sent it."""

    type: str
    raw: JsonObject = field(repr=False, compare=False)

    def channel_ids(self) -> tuple[str, ...]:
        """The id of a top-level `channel` object, if the event has one."""
        channel = self.raw.get("channel")
        if type(channel) is dict and type(channel.get("id")) is str:
            return (channel["id"],)
        return ()


Event: TypeAlias = (
    StasisStart
    | StasisEnd
    | ChannelStateChange
    | Dial
    | ChannelHangupRequest
    | ChannelDestroyed
    | ChannelEnteredBridge
    | ChannelLeftBridge
    | BridgeDestroyed
    | ChannelDtmfReceived
    | PlaybackStarted
    | PlaybackContinuing
    | PlaybackFinished
    | RecordingStarted
    | RecordingFinished
    | RecordingFailed
    | EndpointStateChange
    | PeerStatusChange
    | ContactStatusChange
    | DeviceStateChanged
    | ChannelVarset
    | ChannelDialplan
    | ChannelCallerId
    | ChannelConnectedLine
    | UnknownEvent
)


def _channel(data: JsonObject, key: str, where: str) -> Channel:
    return Channel.from_json(req_object(data, key, where), f"{where}.{key}")


def _opt_channel(data: JsonObject, key: str, where: str) -> Channel | None:
    value = opt_object(data, key, where)
    return None if value is None else Channel.from_json(value, f"{where}.{key}")


def _bridge(data: JsonObject, where: str) -> Bridge:
    return Bridge.from_json(req_object(data, "bridge", where), f"{where}.bridge")


def _playback(data: JsonObject, where: str) -> Playback:
    return Playback.from_json(req_object(data, "playback", where), f"{where}.playback")


def _recording(data: JsonObject, where: str) -> LiveRecording:
    return LiveRecording.from_json(req_object(data, "recording", where), f"{where}.recording")


def _endpoint(data: JsonObject, where: str) -> Endpoint:
    return Endpoint.from_json(req_object(data, "endpoint", where), f"{where}.endpoint")


# Each parser gets the event dict, its `where` label, and the common fields as keywords.
_Common = dict[str, Any]
_Parser = Callable[[JsonObject, str, _Common], Event]

_PARSERS: dict[str, _Parser] = {
    "StasisStart": lambda d, w, c: StasisStart(
        channel=_channel(d, "channel", w),
        args=str_tuple(d, "args", w) if "args" in d else (),
        replace_channel=_opt_channel(d, "replace_channel", w),
        **c,
    ),
    "StasisEnd": lambda d, w, c: StasisEnd(channel=_channel(d, "channel", w), **c),
    "ChannelStateChange": lambda d, w, c: ChannelStateChange(
        channel=_channel(d, "channel", w), **c
    ),
    "Dial": lambda d, w, c: Dial(
        peer=_channel(d, "peer", w),
        caller=_opt_channel(d, "caller", w),
        dialstatus=req_str(d, "dialstatus", w),
        dialstring=str_or_empty(d, "dialstring", w),
        forward=str_or_empty(d, "forward", w),
        forwarded=_opt_channel(d, "forwarded", w),
        **c,
    ),
    "ChannelHangupRequest": lambda d, w, c: ChannelHangupRequest(
        channel=_channel(d, "channel", w),
        cause=opt_int(d, "cause", w),
        soft=opt_bool(d, "soft", w),
        tech_cause=opt_int(d, "tech_cause", w),
        **c,
    ),
    "ChannelDestroyed": lambda d, w, c: ChannelDestroyed(
        channel=_channel(d, "channel", w),
        cause=req_int(d, "cause", w),
        cause_txt=req_str(d, "cause_txt", w),
        tech_cause=opt_int(d, "tech_cause", w),
        **c,
    ),
    "ChannelEnteredBridge": lambda d, w, c: ChannelEnteredBridge(
        bridge=_bridge(d, w), channel=_opt_channel(d, "channel", w), **c
    ),
    "ChannelLeftBridge": lambda d, w, c: ChannelLeftBridge(
        bridge=_bridge(d, w), channel=_channel(d, "channel", w), **c
    ),
    "BridgeDestroyed": lambda d, w, c: BridgeDestroyed(bridge=_bridge(d, w), **c),
    "ChannelDtmfReceived": lambda d, w, c: ChannelDtmfReceived(
        channel=_channel(d, "channel", w),
        digit=req_str(d, "digit", w),
        duration_ms=req_int(d, "duration_ms", w),
        **c,
    ),
    "PlaybackStarted": lambda d, w, c: PlaybackStarted(playback=_playback(d, w), **c),
    "PlaybackContinuing": lambda d, w, c: PlaybackContinuing(playback=_playback(d, w), **c),
    "PlaybackFinished": lambda d, w, c: PlaybackFinished(playback=_playback(d, w), **c),
    "RecordingStarted": lambda d, w, c: RecordingStarted(recording=_recording(d, w), **c),
    "RecordingFinished": lambda d, w, c: RecordingFinished(recording=_recording(d, w), **c),
    "RecordingFailed": lambda d, w, c: RecordingFailed(recording=_recording(d, w), **c),
    "EndpointStateChange": lambda d, w, c: EndpointStateChange(endpoint=_endpoint(d, w), **c),
    "PeerStatusChange": lambda d, w, c: PeerStatusChange(
        endpoint=_endpoint(d, w),
        peer=Peer.from_json(req_object(d, "peer", w), f"{w}.peer"),
        **c,
    ),
    "ContactStatusChange": lambda d, w, c: ContactStatusChange(
        endpoint=_endpoint(d, w),
        contact_info=ContactInfo.from_json(req_object(d, "contact_info", w), f"{w}.contact_info"),
        **c,
    ),
    "DeviceStateChanged": lambda d, w, c: DeviceStateChanged(
        device_state=DeviceState.from_json(req_object(d, "device_state", w), f"{w}.device_state"),
        **c,
    ),
    "ChannelVarset": lambda d, w, c: ChannelVarset(
        channel=_opt_channel(d, "channel", w),
        variable=req_str(d, "variable", w),
        value=str_or_empty(d, "value", w),
        **c,
    ),
    "ChannelDialplan": lambda d, w, c: ChannelDialplan(
        channel=_channel(d, "channel", w),
        dialplan_app=req_str(d, "dialplan_app", w),
        dialplan_app_data=req_str(d, "dialplan_app_data", w),
        **c,
    ),
    "ChannelCallerId": lambda d, w, c: ChannelCallerId(
        channel=_channel(d, "channel", w),
        caller_presentation=req_int(d, "caller_presentation", w),
        caller_presentation_txt=req_str(d, "caller_presentation_txt", w),
        **c,
    ),
    "ChannelConnectedLine": lambda d, w, c: ChannelConnectedLine(
        channel=_channel(d, "channel", w), **c
    ),
}

KNOWN_EVENT_TYPES: frozenset[str] = frozenset(_PARSERS)


def parse_event(data: object) -> Event:
    """Parse one decoded ARI WebSocket message into its event class.

    Raises `AriEventError` naming the event type and the bad field when `data` is not an
    object, has no string `type`, or a field pbxd relies on is missing or mistyped.
    """
    if type(data) is not dict:
        raise AriEventError(f"ARI event: expected a JSON object, got {type(data).__name__}")
    event_type = data.get("type")
    if type(event_type) is not str or not event_type:
        raise AriEventError("ARI event: missing or non-string 'type' field")
    try:
        common: _Common = {
            "timestamp": req_date(data, "timestamp", event_type),
            "application": req_str(data, "application", event_type),
            "asterisk_id": opt_str(data, "asterisk_id", event_type),
        }
        parser = _PARSERS.get(event_type)
        if parser is None:
            return UnknownEvent(type=event_type, raw=data, **common)
        return parser(data, event_type, common)
    except AriParseError as exc:
        raise AriEventError(f"ARI event {exc}") from None
