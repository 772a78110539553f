"""Typed async ARI REST client on aiohttp (channels, bridges, playbacks, recordings, device
states, applications, asterisk, endpoints).

Every method maps to one Asterisk 22 ARI operation and returns a model from `models.py` or
None. HTTP errors raise the `AriError` subclass for their status; an unreachable Asterisk
raises `AriUnavailable`. Credentials travel only in the Authorization header.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import structlog

from pbxd.ari._auth import basic_auth_header, without_credentials
from pbxd.ari.errors import (
    AriError,
    AriParseError,
    AriUnavailable,
    error_for_status,
    error_message,
)
from pbxd.ari.models import (
    Application,
    AsteriskInfo,
    AsteriskPing,
    Bridge,
    Channel,
    DeviceState,
    Endpoint,
    LiveRecording,
    Playback,
    StoredRecording,
)

# Not pbxd.log.get_logger: its `logger=` initial value collides with structlog's wrap_logger.
log = structlog.get_logger(logger_name=__name__)

# Values accepted for a query parameter; sequences are sent comma-separated, as Asterisk expects.
ParamValue = str | int | float | bool | Sequence[str] | None

_ModelT = TypeVar("_ModelT")

# A 10,000-channel GET /channels is about 10 MB; far beyond is a broken or hostile server.
MAX_RESPONSE_BYTES = 16 * 1024 * 1024

# A voicemail message is minutes at most: 16000 B/s WAV makes 10 minutes under 10 MB.
DEFAULT_MAX_RECORDING_BYTES = 32 * 1024 * 1024


def _param(value: str | int | float | bool | Sequence[str]) -> str:
    """Stringify a query value the way Asterisk parses it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return ",".join(value)


async def _read_capped(
    response: aiohttp.ClientResponse, max_bytes: int, method: str, path: str
) -> bytes:
    """The whole body, refused (AriError) as soon as it is known to exceed `max_bytes`."""
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise AriError(
            response.status, f"answer of {declared} bytes exceeds {max_bytes}", method, path
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            raise AriError(response.status, f"answer exceeds {max_bytes} bytes", method, path)
        chunks.append(chunk)
    return b"".join(chunks)


def _segment(value: str) -> str:
    """Percent-encode one path segment (ids are opaque strings)."""
    return quote(value, safe="")


class AriClient:
    """Async client for one Asterisk's ARI, on behalf of one Stasis application.

    `base_url` looks like `http://127.0.0.1:8088/ari`. Pass `session` to share an aiohttp
    session (it is then not closed by `close()`); otherwise one is created on first use.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        app: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        base_url, had_credentials = without_credentials(base_url)
        self.base_url = base_url.rstrip("/")
        self._max_response_bytes = max_response_bytes
        self.app = app
        if had_credentials:
            log.warning("ari_url_credentials_ignored", url=self.base_url)
        self._headers = basic_auth_header(username, password)
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:
        return f"AriClient(base_url={self.base_url!r}, app={self.app!r})"

    async def __aenter__(self) -> AriClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- transport -------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one ARI request; return the decoded JSON body, or None for an empty answer.

        `path` is relative to the base URL (e.g. "/channels/123/answer"); None params are
        left out. Raises an `AriError` subclass for HTTP errors, `AriUnavailable` when
        Asterisk cannot be reached or does not answer within the timeout.
        """
        return (await self._send(method, path, params=params, body=body))[1]

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> tuple[int, Any]:
        """`request`, also returning the HTTP status (for errors about a 2xx body's shape)."""
        status, raw, _ = await self._exchange(method, path, params=params, body=body)
        # Asterisk speaks UTF-8; a stray byte must not escape as UnicodeDecodeError.
        text = raw.decode("utf-8", "replace")
        if not text:
            return status, None
        try:
            return status, json.loads(text)
        except (ValueError, RecursionError):
            raise AriError(
                status, f"invalid JSON in response: {text[:200]!r}", method, path
            ) from None

    async def _exchange(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        body: Mapping[str, Any] | None = None,
        max_bytes: int | None = None,
    ) -> tuple[int, bytes, str]:
        """One HTTP round trip: (status, body bytes, content type) of a 2xx answer; an error
        status raises its `AriError`, a body over `max_bytes` (default: the client's
        `max_response_bytes`) raises `AriError` too."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        started = time.monotonic()
        try:
            async with self._session.request(
                method,
                self.base_url + path,
                params=query,
                json=body,
                headers=self._headers,
                timeout=self._timeout,
            ) as response:
                status = response.status
                # Every answer is capped: a 200 MB body once ran until the request timeout.
                limit = self._max_response_bytes if max_bytes is None else max_bytes
                raw = await _read_capped(response, limit, method, path)
                content_type = response.content_type
                reason = response.reason
        except TimeoutError:
            self._log(method, path, None, started)
            raise AriUnavailable("ARI request timed out", method, path) from None
        except aiohttp.ClientError as exc:
            self._log(method, path, None, started)
            raise AriUnavailable(
                f"ARI unreachable: {type(exc).__name__}: {exc}", method, path
            ) from exc
        self._log(method, path, status, started)
        if status >= 400:
            text = raw.decode("utf-8", "replace")
            raise error_for_status(status, error_message(text) or reason or "", method, path)
        return status, raw, content_type

    @staticmethod
    def _log(method: str, path: str, status: int | None, started: float) -> None:
        elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        log.debug("ari_request", method=method, path=path, status=status, elapsed_ms=elapsed_ms)

    async def _model(
        self,
        parse: Callable[[Any], _ModelT],
        method: str,
        path: str,
        *,
        params: Mapping[str, ParamValue] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> _ModelT:
        status, data = await self._send(method, path, params=params, body=body)
        try:
            return parse(data)
        except AriParseError as exc:
            raise AriError(status, f"unexpected response: {exc}", method, path) from None

    async def _models(self, parse: Callable[[Any], _ModelT], path: str) -> list[_ModelT]:
        status, data = await self._send("GET", path)
        if not isinstance(data, list):
            raise AriError(status, "unexpected response: expected a JSON list", "GET", path)
        try:
            return [parse(item) for item in data]
        except AriParseError as exc:
            raise AriError(status, f"unexpected response: {exc}", "GET", path) from None

    # -- channels --------------------------------------------------------------------------

    async def create_channel(
        self,
        endpoint: str,
        *,
        originator: str | None = None,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        app_args: str | Sequence[str] | None = None,
        variables: Mapping[str, str] | None = None,
        formats: str | Sequence[str] | None = None,
    ) -> Channel:
        """Create a channel to `endpoint` in our Stasis app without dialling it (see `dial`).

        `variables` (e.g. {"CALLERID(num)": "+33..."}) are set before the dial;
        `originator` links the new leg to the inbound channel (codecs, connected line).
        """
        params: dict[str, ParamValue] = {
            "endpoint": endpoint,
            "app": self.app,
            "appArgs": app_args,
            "channelId": channel_id,
            "otherChannelId": other_channel_id,
            "originator": originator,
            "formats": formats,
        }
        body = {"variables": dict(variables)} if variables else None
        return await self._model(
            Channel.from_json, "POST", "/channels/create", params=params, body=body
        )

    async def originate(
        self,
        endpoint: str,
        *,
        app: str | None = None,
        app_args: str | Sequence[str] | None = None,
        extension: str | None = None,
        context: str | None = None,
        priority: int | None = None,
        label: str | None = None,
        caller_id: str | None = None,
        timeout: int | None = None,  # noqa: ASYNC109 -- ARI ring time, not a call timeout
        variables: Mapping[str, str] | None = None,
        channel_id: str | None = None,
        other_channel_id: str | None = None,
        originator: str | None = None,
        formats: str | Sequence[str] | None = None,
    ) -> Channel:
        """Create and dial a channel; once answered it enters `app` (default: ours) or the
        dialplan at `context`/`extension`/`priority` when an extension is given."""
        if app is None and extension is None:
            app = self.app
        params: dict[str, ParamValue] = {
            "endpoint": endpoint,
            "extension": extension,
            "context": context,
            "priority": priority,
            "label": label,
            "app": app,
            "appArgs": app_args,
            "callerId": caller_id,
            "timeout": timeout,
            "channelId": channel_id,
            "otherChannelId": other_channel_id,
            "originator": originator,
            "formats": formats,
        }
        body = {"variables": dict(variables)} if variables else None
        return await self._model(Channel.from_json, "POST", "/channels", params=params, body=body)

    async def dial(
        self,
        channel_id: str,
        *,
        caller: str | None = None,
        timeout: int | None = None,  # noqa: ASYNC109 -- ARI ring time, not a call timeout
    ) -> None:
        """Dial a channel made by `create_channel`; `timeout` is the ring time in seconds."""
        path = f"/channels/{_segment(channel_id)}/dial"
        await self.request("POST", path, params={"caller": caller, "timeout": timeout})

    async def answer(self, channel_id: str) -> None:
        """Answer a channel."""
        await self.request("POST", f"/channels/{_segment(channel_id)}/answer")

    async def ring(self, channel_id: str) -> None:
        """Indicate ringing to the caller."""
        await self.request("POST", f"/channels/{_segment(channel_id)}/ring")

    async def ring_stop(self, channel_id: str) -> None:
        """Stop indicating ringing to the caller."""
        await self.request("DELETE", f"/channels/{_segment(channel_id)}/ring")

    async def progress(self, channel_id: str) -> None:
        """Indicate call progress (early media) to the caller."""
        await self.request("POST", f"/channels/{_segment(channel_id)}/progress")

    async def hangup(
        self,
        channel_id: str,
        *,
        reason: str | None = None,
        reason_code: int | str | None = None,
    ) -> None:
        """Hang up a channel, with a named `reason` (e.g. "busy") or a Q.850 `reason_code`."""
        if reason is not None and reason_code is not None:
            raise ValueError("hangup takes reason or reason_code, not both")
        params: dict[str, ParamValue] = {
            "reason": reason,
            "reason_code": None if reason_code is None else str(reason_code),
        }
        await self.request("DELETE", f"/channels/{_segment(channel_id)}", params=params)

    async def continue_in_dialplan(
        self,
        channel_id: str,
        *,
        context: str | None = None,
        extension: str | None = None,
        priority: int | None = None,
        label: str | None = None,
    ) -> None:
        """Send a channel back to the dialplan (so a caller is never stranded in Stasis)."""
        params: dict[str, ParamValue] = {
            "context": context,
            "extension": extension,
            "priority": priority,
            "label": label,
        }
        await self.request("POST", f"/channels/{_segment(channel_id)}/continue", params=params)

    async def play(
        self,
        channel_id: str,
        media: str | Sequence[str],
        *,
        playback_id: str | None = None,
        lang: str | None = None,
        offsetms: int | None = None,
        skipms: int | None = None,
    ) -> Playback:
        """Play media (e.g. "sound:beep", several in a row) to a channel."""
        params: dict[str, ParamValue] = {
            "media": media,
            "lang": lang,
            "offsetms": offsetms,
            "skipms": skipms,
            "playbackId": playback_id,
        }
        path = f"/channels/{_segment(channel_id)}/play"
        return await self._model(Playback.from_json, "POST", path, params=params)

    async def play_with_id(
        self,
        channel_id: str,
        playback_id: str,
        media: str | Sequence[str],
        *,
        lang: str | None = None,
        offsetms: int | None = None,
        skipms: int | None = None,
    ) -> Playback:
        """Play media to a channel under our own playback id (`/play/{playbackId}`), so its
        PlaybackStarted, which may beat the REST answer, is already known to us."""
        params: dict[str, ParamValue] = {
            "media": media,
            "lang": lang,
            "offsetms": offsetms,
            "skipms": skipms,
        }
        path = f"/channels/{_segment(channel_id)}/play/{_segment(playback_id)}"
        return await self._model(Playback.from_json, "POST", path, params=params)

    async def record(
        self,
        channel_id: str,
        name: str,
        *,
        file_format: str = "wav",
        max_duration_seconds: int | None = None,
        max_silence_seconds: int | None = None,
        if_exists: str | None = None,
        beep: bool | None = None,
        terminate_on: str | None = None,
    ) -> LiveRecording:
        """Record a channel into the stored recording `name` (409 while a live recording of
        that name exists, whatever `if_exists` says). `terminate_on` is a key such as "#",
        "any" or "none"; the file is kept when the caller hangs up mid-recording."""
        params: dict[str, ParamValue] = {
            "name": name,
            "format": file_format,
            "maxDurationSeconds": max_duration_seconds,
            "maxSilenceSeconds": max_silence_seconds,
            "ifExists": if_exists,
            "beep": beep,
            "terminateOn": terminate_on,
        }
        path = f"/channels/{_segment(channel_id)}/record"
        return await self._model(LiveRecording.from_json, "POST", path, params=params)

    async def snoop(
        self,
        channel_id: str,
        *,
        spy: str | None = None,
        whisper: str | None = None,
        app: str | None = None,
        app_args: str | None = None,
        snoop_id: str | None = None,
    ) -> Channel:
        """A snoop channel on `channel_id` in our app (or `app`): `spy`/`whisper` are
        "none", "in", "out" or "both"; playing to a whisper=out snoop speaks to that channel's
        user only. Asterisk answers 200 (not 201) with the new channel, already Up."""
        params: dict[str, ParamValue] = {
            "app": app or self.app,
            "appArgs": app_args,
            "spy": spy,
            "whisper": whisper,
        }
        path = f"/channels/{_segment(channel_id)}/snoop"
        if snoop_id is not None:
            path = f"{path}/{_segment(snoop_id)}"
        return await self._model(Channel.from_json, "POST", path, params=params)

    async def send_dtmf(
        self,
        channel_id: str,
        dtmf: str,
        *,
        before: int | None = None,
        between: int | None = None,
        duration: int | None = None,
        after: int | None = None,
    ) -> None:
        """Send DTMF digits to a channel (timings in milliseconds)."""
        params: dict[str, ParamValue] = {
            "dtmf": dtmf,
            "before": before,
            "between": between,
            "duration": duration,
            "after": after,
        }
        await self.request("POST", f"/channels/{_segment(channel_id)}/dtmf", params=params)

    async def get_variable(self, channel_id: str, variable: str) -> str:
        """A channel variable's value (AriNotFound when unset, or the channel is gone)."""
        path = f"/channels/{_segment(channel_id)}/variable"
        data = await self.request("GET", path, params={"variable": variable})
        value = data.get("value") if isinstance(data, dict) else None
        if not isinstance(value, str):
            raise AriError(200, "unexpected response: no string `value`", "GET", path)
        return value

    async def set_variable(self, channel_id: str, variable: str, value: str) -> None:
        """Set a channel variable (Asterisk keeps it with the channel, across our restarts)."""
        path = f"/channels/{_segment(channel_id)}/variable"
        await self.request("POST", path, params={"variable": variable, "value": value})

    async def get_channel(self, channel_id: str) -> Channel:
        """One channel by id (raises AriNotFound once it is gone)."""
        return await self._model(Channel.from_json, "GET", f"/channels/{_segment(channel_id)}")

    async def list_channels(self) -> list[Channel]:
        """Every channel Asterisk has, in or out of Stasis."""
        return await self._models(Channel.from_json, "/channels")

    # -- bridges ---------------------------------------------------------------------------

    async def create_bridge(
        self,
        *,
        bridge_type: str | Sequence[str] = "mixing",
        bridge_id: str | None = None,
        name: str | None = None,
    ) -> Bridge:
        """Create a bridge; `bridge_type` is e.g. "mixing" or "mixing,dtmf_events"."""
        params: dict[str, ParamValue] = {"type": bridge_type, "bridgeId": bridge_id, "name": name}
        return await self._model(Bridge.from_json, "POST", "/bridges", params=params)

    async def add_channel(
        self,
        bridge_id: str,
        channel_ids: str | Sequence[str],
        *,
        role: str | None = None,
        absorb_dtmf: bool | None = None,
        mute: bool | None = None,
        inhibit_connected_line_updates: bool | None = None,
    ) -> None:
        """Put one or more channels into a bridge."""
        params: dict[str, ParamValue] = {
            "channel": channel_ids,
            "role": role,
            "absorbDTMF": absorb_dtmf,
            "mute": mute,
            "inhibitConnectedLineUpdates": inhibit_connected_line_updates,
        }
        path = f"/bridges/{_segment(bridge_id)}/addChannel"
        await self.request("POST", path, params=params)

    async def remove_channel(self, bridge_id: str, channel_ids: str | Sequence[str]) -> None:
        """Take one or more channels out of a bridge."""
        path = f"/bridges/{_segment(bridge_id)}/removeChannel"
        await self.request("POST", path, params={"channel": channel_ids})

    async def destroy_bridge(self, bridge_id: str) -> None:
        """Destroy a bridge (its channels stay up, outside any bridge)."""
        await self.request("DELETE", f"/bridges/{_segment(bridge_id)}")

    async def get_bridge(self, bridge_id: str) -> Bridge:
        """One bridge by id."""
        return await self._model(Bridge.from_json, "GET", f"/bridges/{_segment(bridge_id)}")

    async def list_bridges(self) -> list[Bridge]:
        """Every bridge Asterisk has."""
        return await self._models(Bridge.from_json, "/bridges")

    # -- playbacks -------------------------------------------------------------------------

    async def get_playback(self, playback_id: str) -> Playback:
        """A playback still queued or playing (AriNotFound once finished)."""
        path = f"/playbacks/{_segment(playback_id)}"
        return await self._model(Playback.from_json, "GET", path)

    async def stop_playback(self, playback_id: str) -> None:
        """Stop a playback: PlaybackFinished follows with state "done" (AriNotFound once over).
        Keys never stop a playback by themselves: the app stops it on ChannelDtmfReceived."""
        await self.request("DELETE", f"/playbacks/{_segment(playback_id)}")

    # -- recordings ------------------------------------------------------------------------

    async def get_live_recording(self, name: str) -> LiveRecording:
        """A recording in progress (AriNotFound once finished)."""
        path = f"/recordings/live/{_segment(name)}"
        return await self._model(LiveRecording.from_json, "GET", path)

    async def stop_recording(self, name: str) -> None:
        """End a live recording and keep its file (RecordingFinished follows)."""
        await self.request("POST", f"/recordings/live/{_segment(name)}/stop")

    async def cancel_recording(self, name: str) -> None:
        """End a live recording and discard its file."""
        await self.request("DELETE", f"/recordings/live/{_segment(name)}")

    async def list_stored_recordings(self) -> list[StoredRecording]:
        """Every recording Asterisk keeps."""
        return await self._models(StoredRecording.from_json, "/recordings/stored")

    async def get_stored_recording(self, name: str) -> StoredRecording:
        """One stored recording (AriNotFound when there is none of that name)."""
        path = f"/recordings/stored/{_segment(name)}"
        return await self._model(StoredRecording.from_json, "GET", path)

    async def stored_recording_file(
        self, name: str, *, max_bytes: int = DEFAULT_MAX_RECORDING_BYTES
    ) -> bytes:
        """The stored recording's file (e.g. WAV: 44-byte header + 16000 bytes per second);
        a file larger than `max_bytes` raises AriError rather than filling memory."""
        path = f"/recordings/stored/{_segment(name)}/file"
        return (await self._exchange("GET", path, max_bytes=max_bytes))[1]

    async def delete_stored_recording(self, name: str) -> None:
        """Delete a stored recording (AriNotFound when there is none)."""
        await self.request("DELETE", f"/recordings/stored/{_segment(name)}")

    async def copy_stored_recording(self, name: str, destination: str) -> StoredRecording:
        """Copy a stored recording to `destination` (AriConflict if that name exists)."""
        path = f"/recordings/stored/{_segment(name)}/copy"
        params: dict[str, ParamValue] = {"destinationRecordingName": destination}
        return await self._model(StoredRecording.from_json, "POST", path, params=params)

    # -- device states ---------------------------------------------------------------------

    async def list_device_states(self) -> list[DeviceState]:
        """The device states ARI controls (`Stasis:<name>` devices)."""
        return await self._models(DeviceState.from_json, "/deviceStates")

    async def get_device_state(self, device: str) -> DeviceState:
        """Any device's state, e.g. "PJSIP/alice" (NOT_INUSE, INUSE, UNAVAILABLE...)."""
        path = f"/deviceStates/{_segment(device)}"
        return await self._model(DeviceState.from_json, "GET", path)

    async def set_device_state(self, device: str, state: str) -> None:
        """Set a `Stasis:<name>` device's state (others: AriConflict; unknown state: 500)."""
        path = f"/deviceStates/{_segment(device)}"
        await self.request("PUT", path, params={"deviceState": state})

    async def delete_device_state(self, device: str) -> None:
        """Forget a `Stasis:<name>` device (it then reads UNKNOWN)."""
        await self.request("DELETE", f"/deviceStates/{_segment(device)}")

    # -- applications, asterisk, endpoints -------------------------------------------------

    async def subscribe(
        self, event_source: str | Sequence[str], app: str | None = None
    ) -> Application:
        """Subscribe our app to `endpoint:PJSIP/carol`, `endpoint:PJSIP` (a technology),
        `deviceState:Stasis:<name>`, `channel:<id>` or `bridge:<id>`: endpoint and device
        events only come after this."""
        path = f"/applications/{_segment(app or self.app)}/subscription"
        params: dict[str, ParamValue] = {"eventSource": event_source}
        return await self._model(Application.from_json, "POST", path, params=params)

    async def unsubscribe(
        self, event_source: str | Sequence[str], app: str | None = None
    ) -> Application:
        """Undo `subscribe`."""
        path = f"/applications/{_segment(app or self.app)}/subscription"
        params: dict[str, ParamValue] = {"eventSource": event_source}
        return await self._model(Application.from_json, "DELETE", path, params=params)

    async def get_application(self, name: str | None = None) -> Application:
        """A Stasis application (default: ours) with the channels and bridges it holds."""
        path = f"/applications/{_segment(name or self.app)}"
        return await self._model(Application.from_json, "GET", path)

    async def filter_events(
        self, allowed: Sequence[str], disallowed: Sequence[str] = (), app: str | None = None
    ) -> Application:
        """Ask Asterisk to send our app only the `allowed` event types (empty: all), never the
        `disallowed` ones (Asterisk 13.26/16.3 and later; older ones answer 404)."""
        path = f"/applications/{_segment(app or self.app)}/eventFilter"
        body = {
            "allowed": [{"type": name} for name in allowed],
            "disallowed": [{"type": name} for name in disallowed],
        }
        return await self._model(Application.from_json, "PUT", path, body=body)

    async def list_applications(self) -> list[Application]:
        """Every registered Stasis application."""
        return await self._models(Application.from_json, "/applications")

    async def info(self) -> AsteriskInfo:
        """Asterisk version, entity id and start times."""
        return await self._model(AsteriskInfo.from_json, "GET", "/asterisk/info")

    async def ping(self) -> AsteriskPing:
        """Check that Asterisk answers."""
        return await self._model(AsteriskPing.from_json, "GET", "/asterisk/ping")

    async def get_endpoint(self, technology: str, resource: str) -> Endpoint:
        """One endpoint, e.g. ("PJSIP", "alice"); its `state` tells whether it is online."""
        path = f"/endpoints/{_segment(technology)}/{_segment(resource)}"
        return await self._model(Endpoint.from_json, "GET", path)

    async def list_endpoints(self, technology: str | None = None) -> list[Endpoint]:
        """Every endpoint, or those of one technology."""
        path = "/endpoints" if technology is None else f"/endpoints/{_segment(technology)}"
        return await self._models(Endpoint.from_json, path)
