"""A small event-driven ARI client that replays a capture's REST calls against the simulator.

A replay is a `Scenario`: the capture it reproduces, what the SIP side does (`peers`, as
`PeerScript` keyword arguments), and a list of steps run in order:

- `IncomingCall(hangup_after=...)`: the carrier's call arrives (`sim.inbound_call`); its
  channel is the role `caller`;
- `When(type, role, state=None)`: wait until such an event has been received (at any time so
  far: the StasisStart of a created channel may come before or after the REST answer). A role
  not bound yet in a StasisStart is bound to the first channel not yet named;
- `Do(method, path, params, save=None)`: one REST call; `{role}` in the path or the params is
  the id of that role; `save` names the role of the object the answer returns;
- `Sleep(seconds)` (virtual seconds), `CloseWs()` (the client closes its WebSocket),
  `DropWs()` (the simulator drops every WebSocket), `Connect()` (open a new WebSocket).

The client records what it sends and receives in the capture format (`records`), so the run is
parsed and compared exactly like the capture (captures.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .captures import Capture, parse_records

USERNAME = "pbxd"
PASSWORD = "pbxd-secret"
APP = "pbxd"


@dataclass(frozen=True)
class IncomingCall:
    """A call from the carrier on trunk-in, as in every capture.

    `hangup_after`: the caller hangs up (BYE, or CANCEL if unanswered) that many virtual
    seconds after the call arrived (the simulator's `inbound_call` counts from arrival).
    """

    did: str = "+33170000001"
    caller_number: str = "+33612000001"
    caller_name: str = "Caller"
    hangup_after: float | None = None
    # From the media captures on: the carrier endpoint (trunk-info sends keys as SIP INFO),
    # the shipped dialplan's Stasis() argument, what the caller does once answered.
    trunk: str = "trunk-in"
    stasis_args: tuple[str, ...] = ()
    role: str = "caller"
    keys: tuple[tuple[float, str], ...] = ()
    talk: float | None = None


@dataclass(frozen=True)
class When:
    type: str
    role: str
    state: str | None = None
    timeout: float = 20.0  # virtual seconds
    count: int = 1  # the n-th such event (a second key press)


@dataclass(frozen=True)
class Do:
    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    save: str | None = None


@dataclass(frozen=True)
class Bind:
    """Give `role` an id of our own before the request that uses it (a playback id in
    `/play/{playbackId}`); `template` may name roles known so far (`menu-{caller}`)."""

    role: str
    template: str


@dataclass(frozen=True)
class Register:
    """The endpoint's phone registers (`expires` > 0) or unregisters (0) with `contact`."""

    resource: str
    contact: str = ""
    expires: int = 60


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class CloseWs:
    pass


@dataclass(frozen=True)
class DropWs:
    pass


@dataclass(frozen=True)
class Connect:
    pass


Step = IncomingCall | When | Do | Bind | Register | Sleep | CloseWs | DropWs | Connect


@dataclass(frozen=True)
class Scenario:
    capture: str
    steps: tuple[Step, ...]
    peers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    ws_states: tuple[str, ...] | None = None  # None: the capture's
    variant: str = ""
    # Codecs of the lab's endpoints where not ulaw: the 2026-12-03 lab's carrier calls
    # (PCMA) never bridged natively with the softphones (ChannelLeftBridge: simple_bridge).
    codecs: Mapping[str, str] = field(default_factory=dict)
    # Requests the trace makes on purpose with values the api-docs refuse ("PUT /path?k=v"),
    # left out of the simulator's own log validation.
    invalid_requests: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return f"{self.capture}[{self.variant}]" if self.variant else self.capture


@dataclass
class RunResult:
    run: Capture
    sim_rest_log: list[Any]
    sim_event_log: list[Any]


class ReplayError(AssertionError):
    pass


def basic_auth(username: str = USERNAME, password: str = PASSWORD) -> str:
    """The Authorization header value (aiohttp's BasicAuth helper is deprecated)."""
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def setup_lab(sim: Any) -> None:
    """The endpoints of the capture lab (README): trunks, alice, bob, dave, offline carol."""
    sim.add_endpoint("PJSIP", "trunk-in")
    sim.add_endpoint("PJSIP", "trunk-info")
    sim.add_endpoint("PJSIP", "trunk-out")
    sim.add_endpoint("PJSIP", "alice", caller_name="Alice", caller_number="alice")
    sim.add_endpoint("PJSIP", "bob", caller_name="Bob", caller_number="bob")
    sim.add_endpoint("PJSIP", "dave", caller_name="Dave", caller_number="dave")
    sim.add_endpoint("PJSIP", "carol", online=False, caller_name="Carol", caller_number="carol")


# Virtual seconds between a request's answer and the client's next step (a LAN client).
CLIENT_TURNAROUND = 0.002


class ReplayClient:
    """Drives one run: a WebSocket reader plus sequential steps."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, clock: Any, sim: Any) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.sim = sim
        self.records: list[dict[str, Any]] = []
        self.ids: dict[str, str] = {}  # role -> simulator id
        self._t0 = clock.monotonic()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self.recording = True

    def _now(self) -> float:
        return round(float(self.clock.monotonic() - self._t0), 4)

    def _record(self, rec: dict[str, Any]) -> None:
        if self.recording:
            self.records.append({"t": self._now(), **rec})

    # ----------------------------------------------------------------- socket
    async def connect(self) -> None:
        ws = await self.session.ws_connect(
            f"{self.base_url}/events", params={"app": APP}, heartbeat=None
        )
        self._ws = ws
        self._closing = False
        self._record({"kind": "ws", "state": "connected"})
        self._reader = asyncio.create_task(self._read(ws))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self._record({"kind": "event", "data": json.loads(msg.data)})
            elif msg.type == aiohttp.WSMsgType.ERROR:
                self._record({"kind": "error", "error": repr(ws.exception())})
        if not self._closing:
            self._record({"kind": "ws", "state": "closed"})

    async def close_ws(self, record: bool = True) -> None:
        ws, reader = self._ws, self._reader
        if ws is None:
            return
        self._closing = True
        if record:
            self._record({"kind": "ws", "state": "closing"})
        await ws.close()
        if reader is not None:
            await reader
        if record:
            self._record({"kind": "ws", "state": "closed"})
        self._ws = self._reader = None

    async def wait_closed_by_server(self, within: float = 5.0) -> None:
        if self._reader is not None:
            await asyncio.wait_for(self._reader, within)
        if self._ws is not None:
            await self._ws.close()
        self._ws = self._reader = None

    # ------------------------------------------------------------------- REST
    async def rest(self, step: Do) -> dict[str, Any]:
        try:
            path = step.path.format_map(self.ids)
            params = {k: v.format_map(self.ids) for k, v in step.params.items()}
        except KeyError as exc:
            raise ReplayError(f"{step}: role {exc} unknown (known: {self.ids})") from None
        async with self.session.request(
            step.method, f"{self.base_url}{path}", params=params
        ) as resp:
            raw = await resp.read()
            is_json = resp.content_type == "application/json"
            text = raw.decode("utf-8", "replace") if is_json or not path.endswith("/file") else ""
            body = json.loads(text) if text.strip() else None
            status = resp.status
            content_type = resp.content_type
        rec: dict[str, Any] = {
            "kind": "request",
            "method": step.method,
            "path": path,
            "params": params,
            "status": status,
            "body": body,
        }
        if path.endswith("/file"):  # recorded as the captures record a file: no bytes
            rec.update(content_type=content_type, content_length=len(raw))
        self._record(rec)
        if step.save is not None:
            if not isinstance(body, dict) or "id" not in body:
                raise ReplayError(f"{step}: answer {status} {body!r} has no id to save")
            self.ids[step.save] = str(body["id"])
        return rec

    # ----------------------------------------------------------------- events
    def _find(self, step: When) -> bool:
        named = set(self.ids.values())
        found = 0
        for rec in self.records:
            if rec["kind"] != "event" or rec["data"].get("type") != step.type:
                continue
            data = rec["data"]
            obj = data.get("peer") if step.type == "Dial" else data.get("channel")
            if obj is None:
                obj = data.get("bridge") or data.get("playback") or data.get("recording")
            if not isinstance(obj, dict):
                continue
            ident = str(obj.get("id", obj.get("name")))
            if step.state is not None and obj.get("state") != step.state:
                continue
            if step.role in self.ids:
                if self.ids[step.role] == ident:
                    found += 1
                    if found >= step.count:
                        return True
            elif step.type == "StasisStart" and ident not in named:
                self.ids[step.role] = ident
                return True
        return False

    async def wait(self, step: When) -> None:
        """Let virtual time run until the awaited event has come (at most `step.timeout`)."""
        try:
            await self.clock.run_until(lambda: self._find(step), within=step.timeout)
        except TimeoutError:
            seen = [
                f"{r['data'].get('type')}"
                for r in self.records
                if r["kind"] == "event" and r["data"].get("type") != "ChannelVarset"
            ]
            raise ReplayError(
                f"no {step} after {step.timeout} virtual s; roles {self.ids}; events so far: {seen}"
            ) from None

    async def settle(self, quiet: float = 2.0) -> None:
        """Let virtual time run until no record arrived for `quiet` virtual seconds."""
        while True:
            seen = len(self.records)
            await self.clock.advance(quiet)
            if len(self.records) == seen:
                return

    # ------------------------------------------------------------------ steps
    async def run(self, step: Step) -> None:
        if isinstance(step, IncomingCall):
            from pbxd.sim import PeerScript

            channel_id = await self.sim.inbound_call(
                step.did,
                step.caller_number,
                step.caller_name,
                trunk=step.trunk,
                hangup_after=step.hangup_after,
                stasis_args=step.stasis_args,
                script=PeerScript(keys=step.keys, talk=step.talk),
            )
            self.ids.setdefault(step.role, str(channel_id))
        elif isinstance(step, Bind):
            self.ids[step.role] = step.template.format_map(self.ids)
        elif isinstance(step, Register):
            if step.expires > 0:
                self.sim.register(step.resource, step.contact)
            else:
                self.sim.unregister(step.resource)
        elif isinstance(step, When):
            await self.wait(step)
        elif isinstance(step, Do):
            await self.rest(step)
            # A real client's next request leaves a few ms later; Asterisk acts meanwhile.
            await self.clock.advance(CLIENT_TURNAROUND)
        elif isinstance(step, Sleep):
            await self.clock.advance(step.seconds)
        elif isinstance(step, CloseWs):
            await self.close_ws()
        elif isinstance(step, DropWs):
            self.sim.drop_websockets()
            await self.wait_closed_by_server()
        elif isinstance(step, Connect):
            await self.connect()
        else:  # pragma: no cover
            raise TypeError(step)


async def run_scenario(scenario: Scenario) -> RunResult:
    """Run one scenario against a fresh simulator, in virtual time; returns what the client saw.

    Time moves only while the client waits (for an event, a sleep, the final quiet), and then
    only once the loop is quiet: the run is the same however loaded the machine is.
    """
    from pbxd.clock import VirtualClock
    from pbxd.sim import AriSimulator, PeerScript

    clock = VirtualClock()
    sim = AriSimulator(
        clock=clock, username=USERNAME, password=PASSWORD, stasis_only_subscriptions=True
    )
    setup_lab(sim)
    for resource, codec in scenario.codecs.items():
        sim.add_endpoint("PJSIP", resource, codec=codec)
    for destination, kwargs in scenario.peers.items():
        sim.script(destination, PeerScript(**kwargs))
    base_url = await sim.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(headers={"Authorization": basic_auth()}) as session:
            client = ReplayClient(session, base_url, clock, sim)
            try:
                await client.connect()
                for step in scenario.steps:
                    await client.run(step)
                await client.settle()
            finally:
                client.recording = False
                await client.close_ws(record=False)
    finally:
        await sim.stop()
    run = parse_records(client.records, name=f"simulator:{scenario.id}")
    return RunResult(run=run, sim_rest_log=list(sim.rest_log), sim_event_log=list(sim.event_log))
