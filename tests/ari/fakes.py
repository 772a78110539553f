"""Small fake ARI servers (REST and event WebSocket) on real local sockets, for the tests."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.ari_conformance.captures import CAPTURES_DIR

CAPTURES = CAPTURES_DIR  # the real Asterisk 22 traces the tests carry
USERNAME = "pbxd"
PASSWORD = "pbxd-secret"
APP = "pbxd"


@dataclass
class Received:
    """One HTTP request as the fake ARI server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    url: str


@dataclass
class FakeAri:
    """A programmable ARI REST server: records requests, answers with queued responses."""

    server: TestServer
    requests: list[Received] = field(default_factory=list)
    responses: list[tuple[int, Any]] = field(default_factory=list)
    hold: asyncio.Event | None = None  # when set up, requests wait on it (timeout tests)

    @classmethod
    def create(cls) -> FakeAri:
        """A fake on a free port, not started yet."""
        app = web.Application()
        fake = cls(TestServer(app))
        app.router.add_route("*", "/{tail:.*}", fake.handle)
        return fake

    @property
    def base_url(self) -> str:
        return str(self.server.make_url("/ari"))

    def respond(self, status: int, body: Any = None) -> None:
        """Queue the answer to the next request (default: 204 without body)."""
        self.responses.append((status, body))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        text = await request.text()
        self.requests.append(
            Received(
                method=request.method,
                path=request.path.removeprefix("/ari"),
                query=dict(request.query),
                headers=dict(request.headers),
                body=json.loads(text) if text else None,
                url=str(request.url),
            )
        )
        if self.hold is not None:
            await self.hold.wait()
        status, body = self.responses.pop(0) if self.responses else (204, None)
        if body is None:
            return web.Response(status=status)
        if isinstance(body, bytes):
            return web.Response(status=status, body=body, content_type="application/json")
        if isinstance(body, str):
            return web.Response(status=status, text=body)
        return web.json_response(body, status=status)


@dataclass
class FakeEventSocket:
    """A fake `/ari/events` WebSocket endpoint that can refuse, send, drop, and play dead."""

    port: int
    reject: list[int] = field(default_factory=list)  # statuses for the next handshakes
    answer_pings: bool = True
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    handshakes: list[dict[str, str]] = field(default_factory=list)
    connected: asyncio.Condition = field(default_factory=asyncio.Condition)
    server: TestServer | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ari"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.handshakes.append(
            {"authorization": request.headers.get("Authorization", ""), **request.query}
        )
        if self.reject:
            return web.Response(status=self.reject.pop(0), text="not ready")
        ws = web.WebSocketResponse(autoping=self.answer_pings)
        await ws.prepare(request)
        async with self.connected:
            self.sockets.append(ws)
            self.connected.notify_all()
        async for _ in ws:  # Asterisk ignores what clients send
            pass
        return ws

    async def wait_sockets(self, count: int) -> web.WebSocketResponse:
        """Wait until `count` connections have been accepted; return the latest."""
        async with self.connected:
            await self.connected.wait_for(lambda: len(self.sockets) >= count)
        return self.sockets[-1]

    async def send(self, payload: dict[str, Any] | str) -> None:
        """Send one message on the latest connection."""
        text = payload if isinstance(payload, str) else json.dumps(payload)
        await self.sockets[-1].send_str(text)

    async def drop(self) -> None:
        """Close every open connection, as Asterisk does when its HTTP side restarts."""
        for ws in self.sockets:
            await ws.close()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/ari/events", self.handle)
        self.server = TestServer(app, host="127.0.0.1", port=self.port)
        await self.server.start_server()
        self.port = self.server.port or self.port

    async def stop(self) -> None:
        """Take the server down (connections dropped, new ones refused)."""
        await self.drop()
        if self.server is not None:
            await self.server.close()
            self.server = None
