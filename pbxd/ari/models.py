"""ARI resources (Asterisk 22 Swagger models) as immutable typed objects.

`from_json` accepts what Asterisk sends: extra fields from newer versions are ignored, a
missing required field or a wrong type raises `AriParseError` naming the field. Fields that
older Asterisk versions omit (`protocol_id`, `language`, `accountcode`) default to "".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pbxd.ari._json import (
    JsonObject,
    ensure_object,
    opt_date,
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
from pbxd.ari.errors import AriParseError


@dataclass(frozen=True, slots=True)
class CallerId:
    """A caller or connected-line identity; both parts may be empty strings."""

    name: str
    number: str

    @classmethod
    def from_json(cls, data: Any, where: str = "CallerId") -> CallerId:
        """Parse an ARI `CallerID` object."""
        data = ensure_object(data, where)
        return cls(name=req_str(data, "name", where), number=req_str(data, "number", where))


@dataclass(frozen=True, slots=True)
class DialplanCep:
    """Where a channel is in the dialplan (context, extension, priority) and which app runs."""

    context: str
    exten: str
    priority: int
    app_name: str
    app_data: str

    @classmethod
    def from_json(cls, data: Any, where: str = "DialplanCep") -> DialplanCep:
        """Parse an ARI `DialplanCEP` object."""
        data = ensure_object(data, where)
        return cls(
            context=req_str(data, "context", where),
            exten=req_str(data, "exten", where),
            priority=req_int(data, "priority", where),
            # Asterisk before 16 did not send the running application.
            app_name=str_or_empty(data, "app_name", where),
            app_data=str_or_empty(data, "app_data", where),
        )


@dataclass(frozen=True, slots=True)
class Channel:
    """A channel: one leg of a call (state is "Down", "Ring", "Ringing", "Up", ...)."""

    id: str
    name: str
    state: str
    caller: CallerId
    connected: CallerId
    dialplan: DialplanCep
    creationtime: datetime
    language: str
    accountcode: str
    protocol_id: str

    @classmethod
    def from_json(cls, data: Any, where: str = "Channel") -> Channel:
        """Parse an ARI `Channel` object."""
        data = ensure_object(data, where)
        return cls(
            id=req_str(data, "id", where),
            name=req_str(data, "name", where),
            state=req_str(data, "state", where),
            caller=CallerId.from_json(req_object(data, "caller", where), f"{where}.caller"),
            connected=CallerId.from_json(
                req_object(data, "connected", where), f"{where}.connected"
            ),
            dialplan=DialplanCep.from_json(
                req_object(data, "dialplan", where), f"{where}.dialplan"
            ),
            creationtime=req_date(data, "creationtime", where),
            language=str_or_empty(data, "language", where),
            accountcode=str_or_empty(data, "accountcode", where),
            protocol_id=str_or_empty(data, "protocol_id", where),
        )


@dataclass(frozen=True, slots=True)
class Bridge:
    """A bridge joining channels; `channels` are channel ids."""

    id: str
    technology: str
    bridge_type: str
    bridge_class: str
    creator: str
    name: str
    channels: tuple[str, ...]
    creationtime: datetime | None
    video_mode: str | None

    @classmethod
    def from_json(cls, data: Any, where: str = "Bridge") -> Bridge:
        """Parse an ARI `Bridge` object."""
        data = ensure_object(data, where)
        return cls(
            id=req_str(data, "id", where),
            technology=req_str(data, "technology", where),
            bridge_type=req_str(data, "bridge_type", where),
            bridge_class=req_str(data, "bridge_class", where),
            creator=req_str(data, "creator", where),
            name=str_or_empty(data, "name", where),
            channels=str_tuple(data, "channels", where),
            # creationtime only exists since Asterisk 17.
            creationtime=opt_date(data, "creationtime", where),
            video_mode=opt_str(data, "video_mode", where),
        )


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A device Asterisk can reach (e.g. PJSIP/alice); state is "online", "offline", ..."""

    technology: str
    resource: str
    state: str | None
    channel_ids: tuple[str, ...]

    @classmethod
    def from_json(cls, data: Any, where: str = "Endpoint") -> Endpoint:
        """Parse an ARI `Endpoint` object."""
        data = ensure_object(data, where)
        return cls(
            technology=req_str(data, "technology", where),
            resource=req_str(data, "resource", where),
            state=opt_str(data, "state", where),
            channel_ids=str_tuple(data, "channel_ids", where),
        )


@dataclass(frozen=True, slots=True)
class Application:
    """A Stasis application and the resources it is subscribed to."""

    name: str
    channel_ids: tuple[str, ...]
    bridge_ids: tuple[str, ...]
    endpoint_ids: tuple[str, ...]
    device_names: tuple[str, ...]
    # The event filter (`PUT .../eventFilter`): type names; empty allowed = every event.
    events_allowed: tuple[str, ...] = ()
    events_disallowed: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any, where: str = "Application") -> Application:
        """Parse an ARI `Application` object (no event filter before Asterisk 13.26/16.3)."""
        data = ensure_object(data, where)
        return cls(
            name=req_str(data, "name", where),
            channel_ids=str_tuple(data, "channel_ids", where),
            bridge_ids=str_tuple(data, "bridge_ids", where),
            endpoint_ids=str_tuple(data, "endpoint_ids", where),
            device_names=str_tuple(data, "device_names", where),
            events_allowed=_event_types(data, "events_allowed", where),
            events_disallowed=_event_types(data, "events_disallowed", where),
        )


def _event_types(data: JsonObject, key: str, where: str) -> tuple[str, ...]:
    """The `type` of each `{"type": ...}` object of an event filter list (absent: none)."""
    value = data.get(key)
    if value is None:
        return ()
    if type(value) is not list:
        raise AriParseError(f"{where}: {key} is not a list")
    return tuple(
        str_or_empty(ensure_object(item, f"{where}.{key}"), "type", where) for item in value
    )


@dataclass(frozen=True, slots=True)
class AsteriskInfo:
    """The subset of `GET /asterisk/info` pbxd reports in health checks."""

    version: str
    entity_id: str
    default_language: str | None
    max_channels: int | None
    startup_time: datetime | None
    last_reload_time: datetime | None
    build_date: str | None

    @classmethod
    def from_json(cls, data: Any, where: str = "AsteriskInfo") -> AsteriskInfo:
        """Parse an ARI `AsteriskInfo` object (its `system` part is required here)."""
        data = ensure_object(data, where)
        system = req_object(data, "system", where)
        config = opt_object(data, "config", where) or {}
        status = opt_object(data, "status", where) or {}
        build = opt_object(data, "build", where) or {}
        return cls(
            version=req_str(system, "version", f"{where}.system"),
            entity_id=req_str(system, "entity_id", f"{where}.system"),
            default_language=opt_str(config, "default_language", f"{where}.config"),
            max_channels=opt_int(config, "max_channels", f"{where}.config"),
            startup_time=opt_date(status, "startup_time", f"{where}.status"),
            last_reload_time=opt_date(status, "last_reload_time", f"{where}.status"),
            build_date=opt_str(build, "date", f"{where}.build"),
        )


@dataclass(frozen=True, slots=True)
class AsteriskPing:
    """The answer to `GET /asterisk/ping` (`ping` is "pong")."""

    asterisk_id: str
    ping: str
    timestamp: str

    @classmethod
    def from_json(cls, data: Any, where: str = "AsteriskPing") -> AsteriskPing:
        """Parse an ARI `AsteriskPing` object."""
        data = ensure_object(data, where)
        return cls(
            asterisk_id=req_str(data, "asterisk_id", where),
            ping=req_str(data, "ping", where),
            timestamp=req_str(data, "timestamp", where),
        )


@dataclass(frozen=True, slots=True)
class Playback:
    """A media playback; `target_uri` is "channel:<id>" or "bridge:<id>"."""

    id: str
    media_uri: str
    target_uri: str
    state: str
    language: str | None = None
    next_media_uri: str | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "Playback") -> Playback:
        """Parse an ARI `Playback` object."""
        data = ensure_object(data, where)
        return cls(
            id=req_str(data, "id", where),
            media_uri=req_str(data, "media_uri", where),
            target_uri=req_str(data, "target_uri", where),
            state=req_str(data, "state", where),
            language=opt_str(data, "language", where),
            next_media_uri=opt_str(data, "next_media_uri", where),
        )

    @property
    def channel_id(self) -> str | None:
        """The id of the channel played to, or None when the target is a bridge."""
        kind, _, target_id = self.target_uri.partition(":")
        return target_id if kind == "channel" else None


@dataclass(frozen=True, slots=True)
class LiveRecording:
    """A recording in progress or just ended (`state`: queued, recording, paused, done,
    failed, canceled). The durations (whole seconds) only come with RecordingFinished, the
    talking/silence split only when the recording had `maxSilenceSeconds`."""

    name: str
    format: str
    target_uri: str
    state: str
    duration: int | None = None
    talking_duration: int | None = None
    silence_duration: int | None = None
    cause: str | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "LiveRecording") -> LiveRecording:
        """Parse an ARI `LiveRecording` object."""
        data = ensure_object(data, where)
        return cls(
            name=req_str(data, "name", where),
            format=req_str(data, "format", where),
            target_uri=req_str(data, "target_uri", where),
            state=req_str(data, "state", where),
            duration=opt_int(data, "duration", where),
            talking_duration=opt_int(data, "talking_duration", where),
            silence_duration=opt_int(data, "silence_duration", where),
            cause=opt_str(data, "cause", where),
        )

    @property
    def channel_id(self) -> str | None:
        """The id of the channel recorded, or None when the target is a bridge."""
        kind, _, target_id = self.target_uri.partition(":")
        return target_id if kind == "channel" else None


@dataclass(frozen=True, slots=True)
class StoredRecording:
    """A finished recording kept by Asterisk (`GET /recordings/stored`)."""

    name: str
    format: str

    @classmethod
    def from_json(cls, data: Any, where: str = "StoredRecording") -> StoredRecording:
        """Parse an ARI `StoredRecording` object."""
        data = ensure_object(data, where)
        return cls(name=req_str(data, "name", where), format=req_str(data, "format", where))


@dataclass(frozen=True, slots=True)
class DeviceState:
    """A device's state (`NOT_INUSE`, `INUSE`, `UNAVAILABLE`, ...), e.g. `PJSIP/alice` or
    an ARI-controlled `Stasis:<name>`."""

    name: str
    state: str

    @classmethod
    def from_json(cls, data: Any, where: str = "DeviceState") -> DeviceState:
        """Parse an ARI `DeviceState` object."""
        data = ensure_object(data, where)
        return cls(name=req_str(data, "name", where), state=req_str(data, "state", where))


@dataclass(frozen=True, slots=True)
class Peer:
    """A SIP peer's reachability as PeerStatusChange reports it (`Reachable`, ...)."""

    peer_status: str
    cause: str | None = None
    address: str | None = None
    port: str | None = None
    time: str | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "Peer") -> Peer:
        """Parse an ARI `Peer` object."""
        data = ensure_object(data, where)
        return cls(
            peer_status=req_str(data, "peer_status", where),
            cause=opt_str(data, "cause", where),
            address=opt_str(data, "address", where),
            port=opt_str(data, "port", where),
            time=opt_str(data, "time", where),
        )


@dataclass(frozen=True, slots=True)
class ContactInfo:
    """A registered contact of an AOR (`contact_status`: NonQualified, Reachable, Removed...);
    `roundtrip_usec` is a string, as Asterisk sends it."""

    uri: str
    contact_status: str
    aor: str
    roundtrip_usec: str | None = None

    @classmethod
    def from_json(cls, data: Any, where: str = "ContactInfo") -> ContactInfo:
        """Parse an ARI `ContactInfo` object."""
        data = ensure_object(data, where)
        return cls(
            uri=req_str(data, "uri", where),
            contact_status=req_str(data, "contact_status", where),
            aor=req_str(data, "aor", where),
            roundtrip_usec=opt_str(data, "roundtrip_usec", where),
        )
