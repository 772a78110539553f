"""Fixtures: a started simulator with the captures' lab (trunks, alice, bob, dave, carol) and an
ARI client talking to it over real sockets.

Time is a VirtualClock: it moves only while a test waits for an event (`EventReader.next`) or
says so (`clock.advance`), so a loaded machine makes the tests slower, never different."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from pbxd.clock import VirtualClock
from pbxd.sim import AriSimulator
from tests.ari_conformance.swagger import Swagger, validate_run

USER, SECRET = "pbxd", "pbxd-secret"
SWAGGER = Swagger.load()
Json = Any


def lab(sim: AriSimulator) -> None:
    """The endpoints of the Asterisk lab the captures were recorded on."""
    sim.add_endpoint("PJSIP", "trunk-in")
    sim.add_endpoint("PJSIP", "trunk-out")
    sim.add_endpoint("PJSIP", "alice", caller_name="Alice", caller_number="alice")
    sim.add_endpoint("PJSIP", "bob", caller_name="Bob", caller_number="bob")
    sim.add_endpoint("PJSIP", "dave", caller_name="Dave", caller_number="dave")
    sim.add_endpoint("PJSIP", "carol", caller_name="Carol", caller_number="carol", online=False)


class EventReader:
    """One event WebSocket; every event received is kept in `events`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, clock: VirtualClock) -> None:
        self.ws = ws
        self.clock = clock
        self.events: list[dict[str, Json]] = []
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                self.events.append(json.loads(msg.data))

    @property
    def ended(self) -> bool:
        """The server closed the socket and every event before that was read."""
        return self._task.done()

    async def next(
        self,
        event_type: str,
        channel: str | None = None,
        where: Callable[[dict[str, Json]], bool] | None = None,
        within: float = 5.0,
        start: int = 0,
    ) -> dict[str, Json]:
        """The first event (from index `start`) of that type (about that channel), letting
        at most `within` virtual seconds pass."""

        def find() -> dict[str, Json] | None:
            for event in self.events[start:]:
                if event["type"] != event_type:
                    continue
                subject = event.get("peer") if event_type == "Dial" else event.get("channel")
                if channel is not None and (subject or {}).get("id") != channel:
                    continue
                if where is not None and not where(event):
                    continue
                return event
            return None

        what = f"{event_type} about {channel}" if channel else event_type
        await self.clock.run_until(lambda: find() is not None, within=within, what=what)
        found = find()
        assert found is not None
        return found

    def of(self, channel: str) -> list[dict[str, Json]]:
        """Events about one channel (Dial: its peer), ChannelVarset excluded."""
        out = []
        for event in self.events:
            if event["type"] == "ChannelVarset":
                continue
            subject = event.get("peer") if event["type"] == "Dial" else event.get("channel")
            if isinstance(subject, dict) and subject.get("id") == channel:
                out.append(event)
        return out

    async def close(self) -> None:
        await self.ws.close()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class Ari:
    """A thin ARI client for tests: returns (status, json body or None)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, clock: VirtualClock) -> None:
        self.session = session
        self.base_url = base_url
        self.clock = clock

    async def call(
        self, method: str, path: str, json_body: Json = None, **params: str
    ) -> tuple[int, Json]:
        async with self.session.request(
            method, self.base_url + path, params=params, json=json_body
        ) as resp:
            text = await resp.text()
            body = json.loads(text) if text and resp.content_type == "application/json" else None
            return resp.status, body

    async def get(self, path: str, **params: str) -> tuple[int, Json]:
        return await self.call("GET", path, **params)

    async def post(self, path: str, json_body: Json = None, **params: str) -> tuple[int, Json]:
        return await self.call("POST", path, json_body, **params)

    async def delete(self, path: str, **params: str) -> tuple[int, Json]:
        return await self.call("DELETE", path, **params)

    async def events(self, app: str = "pbxd") -> EventReader:
        ws_url = self.base_url.replace("http://", "ws://") + f"/events?app={app}"
        return EventReader(await self.session.ws_connect(ws_url), self.clock)

    async def create(self, endpoint: str, **params: str) -> Json:
        """channels/create for app pbxd; asserts 200."""
        status, body = await self.post("/channels/create", endpoint=endpoint, app="pbxd", **params)
        assert status == 200, body
        return body


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def sim(clock: VirtualClock) -> AsyncIterator[AriSimulator]:
    simulator = AriSimulator(clock=clock, username=USER, password=SECRET)
    lab(simulator)
    await simulator.start("127.0.0.1", 0)
    yield simulator
    await simulator.stop()
    # Whatever a test did, all the simulator sent must be valid ARI. Tests send nonsense on
    # purpose, which Asterisk answers with 4xx codes its API description does not declare.
    known = [r for r in simulator.rest_log if SWAGGER.find_operation(r["method"], r["path"])]
    problems = validate_run(SWAGGER, known, simulator.event_log, requests=False)
    assert [p for p in problems if "is not declared by" not in p] == []


@pytest.fixture
async def ari(sim: AriSimulator, clock: VirtualClock) -> AsyncIterator[Ari]:
    headers = {"Authorization": aiohttp.encode_basic_auth(USER, SECRET)}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield Ari(session, sim.base_url, clock)


@pytest.fixture
async def events(ari: Ari, sim: AriSimulator, clock: VirtualClock) -> AsyncIterator[EventReader]:
    reader = await ari.events()
    await clock.drive(sim.wait_connected("pbxd"))
    yield reader
    await reader.close()
