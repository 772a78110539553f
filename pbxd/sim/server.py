"""AriSimulator: an aiohttp server that answers like Asterisk 22's ARI (REST + event WebSocket)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from ..clock import Clock, RealClock
from .faults import SimFaults
from .hub import EventHub, EventSession
from .media import SoundLibrary
from .media_rest import PresenceRoutes, RecordingRoutes
from .model import (
    PRES_ALLOWED_NOT_SCREENED,
    JsonDict,
    SimBridge,
    SimChannel,
    SimEndpoint,
    ari_time,
)
from .pbx import SHIPPED_OUTBOUND_STASIS_ARGS, SimPbx
from .peers import DTMF_DIGITS, PeerScript
from .recordings import RecordingDesk
from .rest import AriRest, AsteriskIdentity, Reply, RestRequest

log = logging.getLogger(__name__)

ASTERISK_VERSION = "22.10.1"
AUTH_REALM = "Asterisk REST Interface"

# Asterisk's ast_http_error() page, for the errors the HTTP layer answers before ARI does.
_HTTP_ERROR_PAGE = """<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>{status} {reason}</title>
</head><body>
<h1>{reason}</h1>
<p>{text}</p>
<hr />
<address>Asterisk Server</address>
</body></html>
"""


def _http_error(status: int, reason: str, text: str) -> web.Response:
    page = _HTTP_ERROR_PAGE.format(status=status, reason=reason, text=text)
    return web.Response(status=status, text=page, content_type="text/html")


class AriSimulator:
    """A fake Asterisk 22 for pbxd: endpoints, scripted far ends, inbound calls, and ARI.

    Every delay goes through `clock`, and event timestamps come from `clock.now()`, so a
    ScaledClock runs whole scenarios faster while durations read as real.

    `stasis_delay` is how long (virtual seconds) a channel from `channels/create` takes to
    enter Stasis after the REST answer; it is never shorter than `stasis_min_real_delay` real
    seconds, so a client that dials before seeing StasisStart loses the race (409) whatever
    the clock speed, as against a real Asterisk.

    `stasis_only_subscriptions=True` (the default) is Asterisk 22 exactly: an inbound channel
    that never originated a leg is watched only while in Stasis, so after its StasisEnd no
    event about it comes (no ChannelDestroyed: ivr_menu_dtmf, voicemail_record,
    early_media_playback). False sends them anyway, as to an app that subscribed to the
    channel itself.

    `event_filter=False` is an Asterisk without ARI event filtering (before 13.26/16.3):
    `PUT /applications/{app}/eventFilter` is an unknown resource (404) and every event is sent.
    """

    def __init__(
        self,
        clock: Clock | None = None,
        username: str = "pbxd",
        password: str = "pbxd-secret",
        *,
        asterisk_id: str = "02:fc:00:00:00:01",
        system_name: str = "",
        stasis_delay: float = 0.001,
        stasis_min_real_delay: float = 0.01,
        stasis_only_subscriptions: bool = True,
        event_filter: bool = True,
    ) -> None:
        self.clock: Clock = clock if clock is not None else RealClock()
        self.username = username
        self.password = password
        self.asterisk_id = asterisk_id
        speed = float(getattr(self.clock, "speed", 1.0))
        self.hub = EventHub(self._app_event)
        self.hub.on_delivered = self._log_event
        self.faults = SimFaults(self, self.clock)
        """Fault injection (pbxd/sim/faults.py): held events, failed requests, and more."""
        self.hub.gate = self.faults.keeps_back
        self.pbx = SimPbx(
            self.clock,
            self.hub.publish,
            self.hub.is_active,
            asterisk_id=asterisk_id,
            system_name=system_name,
            stasis_delay=max(stasis_delay, stasis_min_real_delay * speed),
            extra_stasis_delay=self.faults.stasis_delay,
        )
        self.pbx.stasis_only_subscriptions = stasis_only_subscriptions
        self.rest = AriRest(
            self.pbx,
            AsteriskIdentity(
                asterisk_id, ASTERISK_VERSION, self.clock.now(), system_name=system_name
            ),
            lambda: self.hub.active_apps,
            self.hub.filters if event_filter else None,
        )
        self.hub.in_use = self.rest.app_in_use
        RecordingRoutes(self.rest)
        PresenceRoutes(self.rest)
        self.rest_log: list[JsonDict] = []
        """Every REST exchange, in capture format: t, kind, method, path, params, status, body."""
        self.event_log: list[JsonDict] = []
        """Every event sent to a WebSocket, in capture format: t, kind="event", data."""
        self._t0 = self.clock.monotonic()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._closing: set[asyncio.Task[None]] = set()

    # --------------------------------------------------------------- set-up
    def add_endpoint(
        self,
        technology: str,
        resource: str,
        *,
        online: bool = True,
        caller_name: str = "",
        caller_number: str = "",
        context: str | None = None,
        codec: str = "ulaw",
    ) -> None:
        """Configure a PJSIP endpoint. `context` defaults to from-trunk for `trunk*`, else
        from-internal (what created channels show in `dialplan.context`). Two legs of
        different `codec`s share a bridge without native RTP (technology simple_bridge)."""
        self.pbx.add_endpoint(
            technology,
            resource,
            online=online,
            caller_name=caller_name,
            caller_number=caller_number,
            context=context,
            codec=codec,
        )

    def script(self, destination: str, script: PeerScript) -> None:
        """How a destination behaves: `PJSIP/alice`, a number dialled via a trunk
        (`+33612345678` matches `PJSIP/+33612345678@trunk-out`), or a full dial string."""
        self.pbx.scripts.set(destination, script)

    @property
    def default_script(self) -> PeerScript:
        """The script of unscripted destinations (default: ring forever)."""
        return self.pbx.scripts.default

    @default_script.setter
    def default_script(self, script: PeerScript) -> None:
        self.pbx.scripts.default = script

    @property
    def sound_seconds(self) -> dict[str, float]:
        """Playback length per media URI (`sound:beep` is 0.42 s; others default to 1 s)."""
        return self.pbx.sound_seconds

    @property
    def sounds(self) -> SoundLibrary:
        """The sounds this Asterisk has (the lab's prompts and `beep` by default)."""
        return self.pbx.sounds

    def add_sound(self, name: str, seconds: float) -> None:
        """A sound `sound:<name>` lasting `seconds`; a sound it lacks fails at once."""
        self.pbx.sounds.add(name, seconds)

    def scan_sounds(self, folder: str | Path, *, prefix: str = "") -> list[str]:
        """Add the sound files of a folder (`.wav` by header, `.sln`, `.ulaw`... by size), e.g.
        a real configuration's prompts for a dry run; returns the sound names added."""
        return self.pbx.sounds.scan(Path(folder), prefix=prefix)

    def register(self, resource: str, contact_uri: str = "", technology: str = "PJSIP") -> None:
        """The endpoint's phone registers (Expires > 0): it goes online; subscribed apps get
        EndpointStateChange, PeerStatusChange (Reachable), ContactStatusChange (NonQualified)."""
        endpoint = self._endpoint(technology, resource)
        self.pbx.presence.register(endpoint, contact_uri or f"sip:{resource}@127.0.0.1:5060")

    def unregister(self, resource: str, technology: str = "PJSIP") -> None:
        """The endpoint's phone unregisters (Expires 0): it goes offline, the same three
        events with Unreachable and Removed."""
        self.pbx.presence.unregister(self._endpoint(technology, resource))

    def _endpoint(self, technology: str, resource: str) -> SimEndpoint:
        endpoint = self.pbx.endpoint(technology, resource)
        if endpoint is None:
            raise KeyError(f"{technology}/{resource}")
        return endpoint

    @property
    def recordings(self) -> RecordingDesk:
        """Live and stored recordings (`stored[name].seconds`, `add_stored(name, seconds)`)."""
        return self.pbx.recordings

    # ------------------------------------------------------------ lifecycle
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen; returns the ARI base URL `http://HOST:PORT/ari`."""
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._runner = runner
        bound = runner.addresses[0]
        self._base_url = f"http://{host}:{bound[1]}/ari"
        self._t0 = self.clock.monotonic()
        return self._base_url

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("simulator not started")
        return self._base_url

    async def stop(self) -> None:
        """Close the WebSockets, cancel every pending timer and stop listening."""
        self.faults.clear()
        sessions = self.hub.drop_all()
        for session in sessions:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await session.wait_closed()
        self.pbx.shutdown()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    def drop_websockets(self) -> None:
        """Close every event WebSocket (Asterisk's HTTP side restarting); calls stay up."""
        for session in self.hub.drop_all():
            task = asyncio.get_running_loop().create_task(session.wait_closed())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def wait_connected(self, app: str = "pbxd") -> None:
        """Return once an event WebSocket has registered `app` (wrap in asyncio.timeout)."""
        await self.hub.wait_active(app)

    async def wait_until_idle(self) -> None:
        """Return once no channel is left (wrap in asyncio.timeout)."""
        await self.pbx.wait_idle()

    # ---------------------------------------------------------------- calls
    async def inbound_call(
        self,
        did: str,
        caller_number: str,
        caller_name: str = "",
        *,
        trunk: str = "trunk-in",
        hangup_after: float | None = None,
        app: str = "pbxd",
        dtmf: str = "",
        dtmf_after: float = 0.5,
        presentation: int = PRES_ALLOWED_NOT_SCREENED,
        stasis_args: Sequence[str] = (),
        script: PeerScript | None = None,
        ringing: bool = False,
    ) -> str:
        """A call from the carrier to `did` enters Stasis(app); returns the channel id.

        `hangup_after` (virtual s from arrival): the caller sends CANCEL if the call is not
        answered by then (cause 127), BYE if it is (16). `dtmf` digits are sent `dtmf_after`
        s after pbxd answers. If `app` has no WebSocket, Stasis() fails and the call ends at
        once, with no event, as on Asterisk. `presentation` is the caller's (AST_PRES_*, e.g.
        PRES_PROHIB_NOT_SCREENED for a withheld number); `stasis_args` the dialplan's Stasis()
        arguments after the app, e.g. SHIPPED_STASIS_ARGS (none: plain `Stasis(pbxd)`).
        `script` says what the caller does once answered (`keys`, `talk` into a recording);
        it replaces `dtmf`/`dtmf_after` when given. `ringing`: the dialplan runs Ringing()
        before Stasis() (the shipped one does; 180 sent, no event).
        """
        chan = self.pbx.inbound_call(
            did,
            caller_number,
            caller_name,
            trunk=trunk,
            app=app,
            hangup_after=hangup_after,
            dtmf=dtmf,
            dtmf_after=dtmf_after,
            presentation=presentation,
            stasis_args=stasis_args,
            script=script,
            ringing=ringing,
        )
        return chan.id

    async def softphone_call(
        self,
        endpoint: str,
        dialled: str,
        *,
        hangup_after: float | None = None,
        presentation: int = PRES_ALLOWED_NOT_SCREENED,
        stasis_args: Sequence[str] = SHIPPED_OUTBOUND_STASIS_ARGS,
        app: str = "pbxd",
    ) -> str:
        """A softphone (endpoint `endpoint`, e.g. alice) dials `dialled`; the shipped
        [from-softphones] context sends it to Stasis(app,outbound,${CALLERID(pres)}), with
        the number as typed in ${EXTEN}. Returns the channel id."""
        ep = self.pbx.endpoint("PJSIP", endpoint)
        if ep is None:
            raise ValueError(f"no endpoint PJSIP/{endpoint} in the simulator")
        chan = self.pbx.inbound_call(
            dialled,
            ep.caller.number,
            ep.caller.name,
            trunk=endpoint,
            app=app,
            hangup_after=hangup_after,
            presentation=presentation,
            stasis_args=stasis_args,
        )
        return chan.id

    def hangup(self, channel_id: str) -> None:
        """The far end of a channel hangs up now (BYE if answered; CANCEL if inbound ringing)."""
        chan = self.pbx.channels.get(channel_id)
        if chan is not None:
            self.pbx.remote_hangup(chan)

    def send_dtmf(self, channel_id: str, digits: str) -> None:
        """The far end of a channel presses `digits` (one every 0.25 s, starting now)."""
        chan = self.pbx.channels.get(channel_id)
        if chan is None:
            raise KeyError(channel_id)
        if any(d not in DTMF_DIGITS for d in digits):
            raise ValueError(f"invalid DTMF digits {digits!r}")
        self.pbx.send_dtmf(chan, digits)

    # ------------------------------------------------------------ inspection
    def channel(self, channel_id: str) -> SimChannel | None:
        """A live channel's state (None once destroyed)."""
        return self.pbx.channels.get(channel_id)

    def channel_history(self, channel_id: str) -> SimChannel | None:
        """A channel live or ended (the last 10,000): e.g. whether its caller got early media
        (`sip_responses`, `heard`) once the call is over."""
        return self.pbx.channels.get(channel_id) or self.pbx.ended.get(channel_id)

    @property
    def channels(self) -> list[SimChannel]:
        return list(self.pbx.channels.values())

    def bridge(self, bridge_id: str) -> SimBridge | None:
        return self.pbx.bridges.get(bridge_id)

    @property
    def bridges(self) -> list[SimBridge]:
        return list(self.pbx.bridges.values())

    # ------------------------------------------------------------- plumbing
    def _now_t(self) -> float:
        return round(self.clock.monotonic() - self._t0, 6)

    def _app_event(self, event_type: str, app: str) -> JsonDict:
        return {
            "type": event_type,
            "application": app,
            "timestamp": ari_time(self.clock.now()),
            "asterisk_id": self.asterisk_id,
        }

    def _log_event(self, message: JsonDict) -> None:
        self.event_log.append({"t": self._now_t(), "kind": "event", "data": message})
        self.faults.sent(message)

    def _authorized(self, request: web.Request) -> bool:
        api_key = request.query.get("api_key")
        if api_key is not None:
            return self._credentials_match(api_key)
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return self._credentials_match(decoded)

    def _credentials_match(self, user_colon_secret: str) -> bool:
        """`user:password` as in api_key and Basic auth, compared in constant time."""
        expected = f"{self.username}:{self.password}"
        return secrets.compare_digest(user_colon_secret.encode(), expected.encode())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._serve(request)
        except (web.HTTPException, ConnectionError, asyncio.CancelledError):
            raise
        except Exception:  # never let bad input or a simulator bug take the server down
            log.exception("ARI simulator failed on %s %s", request.method, request.path)
            return web.json_response({"message": "Internal Server Error"}, status=500)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path  # encoded: a `%2F` inside a segment stays inside it
        if path != "/ari" and not path.startswith("/ari/"):
            return _http_error(404, "Not Found", "The requested URL was not found on this server.")
        rel = path[len("/ari") :] or "/"
        if not self._authorized(request):
            reply = Reply(
                401,
                {"message": "Authentication required"},
                {"WWW-Authenticate": f'Basic realm="{AUTH_REALM}"'},
            )
            return self._respond(request, rel, {}, reply)
        if rel == "/events":
            return await self._events(request)
        query: dict[str, list[str]] = {}
        for key, value in request.query.items():
            if key != "api_key":
                query.setdefault(key, []).append(value)
        try:
            body = await self._read_body(request, query)
        except ValueError:
            return self._respond(
                request, rel, query, Reply(400, {"message": "Error parsing request body"})
            )
        req = RestRequest(method=request.method, path=rel, query=query, body=body)
        rule = self.faults.request_rule(request.method, rel, query)
        if rule is not None:
            await self.faults.run(rule.before)
            if rule.stall:
                await self.faults.stalled()
                return _http_error(503, "Service Unavailable", "The simulator is stopping.")
            if rule.reply is not None:
                return self._respond(request, rel, query, Reply(*rule.reply))
        try:
            reply = self.rest.dispatch(req)
        except Exception:  # a simulator bug answers 500, it never takes the server down
            log.exception("ARI simulator failed on %s %s", request.method, rel)
            reply = Reply(500, {"message": "Internal Server Error"})
        if rule is not None:
            await self.faults.run(rule.after)
        return self._respond(request, rel, query, reply)

    @staticmethod
    async def _read_body(request: web.Request, query: dict[str, list[str]]) -> Any:
        """A JSON body (ValueError if malformed); form fields join the query like Asterisk's."""
        if not request.can_read_body:
            return None
        if request.content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, str):
                    query.setdefault(key, []).append(value)
            return None
        raw = await request.read()
        if not raw.strip():
            return None
        if request.content_type not in ("application/json", "", "application/octet-stream"):
            return None
        return json.loads(raw)

    def _respond(
        self, request: web.Request, rel: str, query: Mapping[str, list[str]], reply: Reply
    ) -> web.Response:
        self.rest_log.append(
            {
                "t": self._now_t(),
                "kind": "request",
                "method": request.method,
                "path": rel,
                "params": {k: ",".join(v) for k, v in query.items()},
                "status": reply.status,
                "body": reply.body,
            }
        )
        if isinstance(reply.body, bytes):
            # A file (stored recording): logged as the captures do, without its bytes.
            logged = self.rest_log[-1]
            logged["body"] = None
            logged["content_type"] = reply.headers.get("Content-Type", "")
            logged["content_length"] = len(reply.body)
            return web.Response(status=reply.status, body=reply.body, headers=reply.headers)
        if reply.status == 204 or reply.body is None:
            return web.Response(status=reply.status, headers=reply.headers)
        return web.Response(
            status=reply.status,
            text=json.dumps(reply.body),
            content_type="application/json",
            headers=reply.headers,
        )

    async def _events(self, request: web.Request) -> web.StreamResponse:
        """GET /ari/events?app=a,b: the event WebSocket."""
        apps: list[str] = []
        for value in request.query.getall("app", []):
            apps.extend(value.split(","))
        if not apps:
            return _http_error(400, "Bad Request", "HTTP request is missing param: [app]")
        if any(not app for app in apps):
            return _http_error(400, "Bad Request", "Invalid application provided in param [app].")
        ws = web.WebSocketResponse(autoping=True)
        if not ws.can_prepare(request).ok:
            return _http_error(426, "Upgrade Required", "WebSocket upgrade required")
        await self.faults.websockets_open()
        session = EventSession(ws, apps)
        # Registered before the handshake completes, like Asterisk's event_session_alloc:
        # events raised meanwhile wait in the queue.
        self.hub.register(session)
        try:
            await ws.prepare(request)
            session.start()
            async for _msg in ws:  # Asterisk ignores what clients send
                pass
        finally:
            self.hub.unregister(session)
            session.close()
        return ws
