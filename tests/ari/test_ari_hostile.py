"""A hostile or broken Asterisk: floods of bad events and huge REST answers stay bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from pbxd.ari.client import MAX_RESPONSE_BYTES, AriClient
from pbxd.ari.errors import AriError, AriUnavailable
from pbxd.log import LogBudget
from pbxd.metrics import exposition, sample

from .fakes import APP, PASSWORD, USERNAME, FakeEventSocket
from .test_ari_stream import (
    STASIS_START,
    Recorder,
    RecordingClock,
    eventually,
    make_stream,
    running,
)

BAD_EVENTS = "pbxd_ari_bad_events_total"


def test_log_budget_lets_a_burst_through_then_one_line_per_interval() -> None:
    budget = LogBudget(burst=3, interval=60.0)
    seen = [budget.take(t * 0.001) for t in range(1000)]  # 1,000 in one second
    assert seen[:3] == [0, 0, 0] and seen[3:] == [None] * 997
    assert budget.take(60.01) == 997  # the summary: how many were held back
    assert budget.take(60.5) is None  # the flood goes on: quiet until the next interval
    assert budget.take(121.0) == 1
    assert budget.take(200.0) == 0 and budget.take(200.1) == 0  # a quiet minute refills


async def test_a_flood_of_bad_events_is_counted_but_logged_a_few_times(
    fake_events: FakeEventSocket, debug_logs: list[MutableMapping[str, Any]]
) -> None:
    clock = RecordingClock()
    recorder = Recorder()
    before = {kind: sample(BAD_EVENTS, kind=kind) for kind in ("json", "event")}
    stream = make_stream(
        fake_events.base_url, recorder, clock=clock, bad_event_budget=LogBudget(5, 60.0)
    )
    async with running(stream):
        await fake_events.wait_sockets(1)
        for n in range(300):
            await fake_events.send("{not json" if n % 2 else {"type": "StasisStart"})
        await fake_events.send(STASIS_START)
        await eventually(lambda: len(recorder.events) == 1)
        clock.elapsed += 60  # a minute later, one more: the summary line
        await fake_events.send("{still not json")
        await fake_events.send(STASIS_START)
        await eventually(lambda: len(recorder.events) == 2)
    lines = [e for e in debug_logs if e["event"] == "ari_bad_event"]
    assert [e["suppressed"] for e in lines] == [0, 0, 0, 0, 0, 295]
    assert len(recorder.bad) == 301  # the daemon still hears of every one
    assert sample(BAD_EVENTS, kind="json") - before["json"] == 151
    assert sample(BAD_EVENTS, kind="event") - before["event"] == 150
    assert b'pbxd_ari_bad_events_total{kind="json"}' in exposition()


# ------------------------------------------------------------------ huge REST answers


@pytest.fixture
async def huge_answers() -> AsyncIterator[str]:
    """An ARI base URL whose GET /channels streams 200 MB and /bridges declares 1 GB."""

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b"[" + b" " * (1024 * 1024 - 1)
        try:
            for _ in range(200):
                await response.write(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up, as it should
        return response

    async def declared(_: web.Request) -> web.Response:
        return web.Response(
            body=b"[]", headers={"Content-Length": str(1 << 30)}, content_type="application/json"
        )

    app = web.Application()
    app.router.add_get("/ari/channels", endless)
    app.router.add_get("/ari/bridges", declared)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("/ari"))
    finally:
        await server.close()


async def test_a_huge_rest_answer_is_refused_not_read_until_the_timeout(
    huge_answers: str,
) -> None:
    # A timeout far beyond what reading 200 MB takes: only the size cap can end this.
    async with AriClient(huge_answers, USERNAME, PASSWORD, APP, timeout=300) as client:
        with pytest.raises(AriError) as refused:
            await client.list_channels()
    assert not isinstance(refused.value, AriUnavailable)
    assert f"exceeds {MAX_RESPONSE_BYTES} bytes" in str(refused.value)


async def test_a_declared_huge_answer_is_refused_before_reading(huge_answers: str) -> None:
    async with AriClient(huge_answers, USERNAME, PASSWORD, APP, max_response_bytes=4096) as client:
        with pytest.raises(AriError, match=f"answer of {1 << 30} bytes exceeds 4096"):
            await client.request("GET", "/bridges")
